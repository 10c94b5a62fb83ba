"""The daily digest: open incidents, the riskiest GPUs, false alarms of the last day (mrkdwn text).

Times are Slack date tokens (each reader sees local time; the fallback is UTC) and people are
``<@U…>`` mentions; names from the metrics are escaped, so they never ping or link anyone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.blocks.common import escape, fmt_time, mention
from storage.repository import Repository


def digest_text(repo: Repository, at: datetime, *, top: int = 5) -> str:
    """Return the digest as of ``at`` (Slack mrkdwn, readable as plain text too)."""
    open_incidents = repo.open_incidents()
    since = at - timedelta(days=1)
    false_alarms = [f for f in repo.feedback() if f.verdict == "false_alarm" and f.at >= since]
    status = repo.status()
    lines = [f"*gpu-risk daily digest* ({fmt_time(at)})"]
    lines.append(f"*Open incidents:* {len(open_incidents)}")
    for rec in open_incidents[:top]:
        ack = f", acknowledged by {mention(rec.acknowledged_by)}" if rec.acknowledged_by else ""
        lines.append(
            f"• [{rec.severity}] {escape(rec.incident.title)} (risk {rec.score:.2f}, "
            f"since {fmt_time(rec.first_seen)}{ack})"
        )
    if len(open_incidents) > top:
        lines.append(f"• … and {len(open_incidents) - top} more")
    gpus = repo.top_gpus(top)
    if gpus:
        lines.append(
            "*Riskiest GPUs:* " + ", ".join(f"`{escape(g.key)}` {g.score:.2f}" for g in gpus)
        )
    who = sorted({f.who for f in false_alarms})
    by = f" (marked by {', '.join(mention(w) for w in who)})" if who else ""
    lines.append(f"*False alarms in the last 24 h:* {len(false_alarms)}{by}")
    lines.append(f"*Data source:* {status.data_source}")
    return "\n".join(lines)
