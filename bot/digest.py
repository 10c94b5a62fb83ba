"""The daily digest: open incidents, the riskiest GPUs, false alarms of the last day (mrkdwn text)."""

from __future__ import annotations

from datetime import datetime, timedelta

from analysis.types import format_time
from storage.repository import Repository


def digest_text(repo: Repository, at: datetime, *, top: int = 5) -> str:
    """Return the digest as of ``at`` (Slack mrkdwn, readable as plain text too)."""
    open_incidents = repo.open_incidents()
    since = at - timedelta(days=1)
    false_alarms = [f for f in repo.feedback() if f.verdict == "false_alarm" and f.at >= since]
    status = repo.status()
    lines = [f"*gpu-risk daily digest* ({format_time(at)})"]
    lines.append(f"*Open incidents:* {len(open_incidents)}")
    for rec in open_incidents[:top]:
        ack = f", acknowledged by {rec.acknowledged_by}" if rec.acknowledged_by else ""
        lines.append(
            f"• [{rec.severity}] {rec.incident.title} (risk {rec.score:.2f}, "
            f"since {format_time(rec.first_seen)}{ack})"
        )
    if len(open_incidents) > top:
        lines.append(f"• … and {len(open_incidents) - top} more")
    gpus = repo.top_gpus(top)
    if gpus:
        lines.append("*Riskiest GPUs:* " + ", ".join(f"`{g.key}` {g.score:.2f}" for g in gpus))
    lines.append(f"*False alarms in the last 24 h:* {len(false_alarms)}")
    lines.append(f"*Data source:* {status.data_source}")
    return "\n".join(lines)
