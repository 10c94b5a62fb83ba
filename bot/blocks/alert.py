"""The alert message, its in-place edits (acknowledged, silenced, false alarm, resolved) and
the thread replies that follow an incident's life."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    DividerBlock,
    PlainTextObject,
)

from analysis.sustained import held_signal
from analysis.types import GpuRef, Incident
from bot.blocks.common import (
    ACTION_ACK,
    ACTION_FALSE_ALARM,
    ACTION_SILENCE_4H,
    ACTION_SILENCE_MODAL,
    ACTIONS_BLOCK_ID,
    MAX_SECTION_TEXT,
    SEVERITY_EMOJI,
    BlockOptions,
    clip,
    collapse,
    context,
    escape,
    fit,
    fmt_time,
    header,
    mention,
    plain_text,
    redact_labels,
    section,
)
from bot.blocks.models import AlertState

Blocks = list[dict[str, Any]]


def alert_text(incident: Incident, state: AlertState | None = None, *, cluster: str = "") -> str:
    """The notification fallback ``text`` (what push notifications and screen readers show);
    ``cluster`` (when the bot names one) leads it."""
    prefix = "Resolved: " if state is not None and state.status == "resolved" else ""
    where = f"{cluster}: " if cluster else ""
    return plain_text(
        f"{prefix}{where}[{incident.severity}] {incident.title} (risk {incident.score:.2f})"
    )


def alert_blocks(
    incident: Incident,
    state: AlertState | None = None,
    options: BlockOptions | None = None,
    *,
    record_id: str | int | None = None,
    cluster: str = "",
) -> Blocks:
    """The alert: header, severity and risk, explanation, top factors, GPUs, links, buttons.

    ``record_id`` (the state store's incident id) is what the buttons carry; default
    ``incident.id``. ``cluster`` (a bot watching several, or one named by GPU_RISK_CLUSTER)
    leads the header and has its own field.
    """
    opts = options or BlockOptions()
    st = state or AlertState()
    resolved = st.status == "resolved"
    title = f"{cluster}: {incident.title}" if cluster else incident.title
    done = "Merged" if st.merged_into else "Resolved"
    blocks: list[Block] = [header(f"{done}: {title}" if resolved else title)]
    said = held_signal(incident.signals)  # opened on risk held below the threshold
    held = f" ({escape(said)})" if said else ""
    fields = [
        f"*Severity*\n{SEVERITY_EMOJI.get(incident.severity, '')} {incident.severity}",
        f"*Risk*\n{incident.score:.2f}{held}",
        f"*Root cause*\n{incident.root_cause.kind} `{escape(incident.root_cause.id)}`",
        f"*GPUs at risk*\n{len(incident.gpus)}",
    ]
    if cluster:
        fields.append(f"*Cluster*\n`{escape(cluster)}`")
    blocks.append(section("", fields=fields))
    blocks.extend(explanation_blocks(incident, opts))
    blocks.append(section(f"*Affected GPUs*\n{gpu_list(incident, opts.max_gpus_shown)}"))
    links = link_text(incident, opts)
    blocks.append(context(f"Incident `{incident.id}` · detected {fmt_time(incident.at)}", links))
    blocks.extend(state_blocks(st))
    if not resolved:
        blocks.append(alert_actions(str(record_id if record_id is not None else incident.id)))
    return fit(blocks)


#: What a factor's line says instead of a share when the share is no causal attribution.
_NOT_ATTRIBUTED: dict[str, str] = {
    "detector": "flagged by the detector",
    "deviation": "ranked by deviation",
    "rule": "rule fired",
}


def explanation_blocks(incident: Incident, opts: BlockOptions) -> list[Block]:
    """The one-line explanation, its top factors and rule hints (labels allowlisted)."""
    exp = incident.explanation
    out: list[Block] = []
    if exp is None or not (exp.summary or exp.factors):
        return [section("_No explanation yet: the causal model is still fitting._")]
    if exp.summary:
        out.append(section(escape(redact_labels(exp.summary, opts.label_allowlist))))
    if exp.factors:
        lines: list[str] = []
        budget = MAX_SECTION_TEXT - 100
        for f in exp.factors[:3]:
            detail = f" · {redact_labels(f.detail, opts.label_allowlist)}" if f.detail else ""
            weight = f"{f.share:.0%}" if f.basis == "attribution" else _NOT_ATTRIBUTED[f.basis]
            line = clip(
                f"• *{escape(f.name)}* on `{escape(f.entity)}` — {weight}{escape(detail)}", 900
            )
            if sum(len(x) + 1 for x in lines) + len(line) > budget:
                break
            lines.append(line)
        more = len(exp.factors) - len(lines)
        if more > 0:
            lines.append(f"_… and {more} more factors_")
        out.append(section("*Top factors*\n" + "\n".join(lines)))
    if exp.hints:
        hints = [escape(redact_labels(h, opts.label_allowlist)) for h in exp.hints]
        out.append(context(*(f":bulb: {h}" for h in hints[:9])))
    return out


def gpu_list(incident: Incident, shown: int) -> str:
    """The affected GPUs, riskiest first, collapsed past ``shown`` with a count."""
    ranked = sorted(incident.gpus, key=lambda g: -g.score)
    items = [f"`{escape(g.key)}` {g.score:.2f}" for g in ranked]
    return collapse(items, shown) if items else "_none_"


def promql_for(incident: Incident) -> str:
    """A PromQL selector for the incident's GPUs (their temperature as a first view)."""
    nodes = sorted({g.node for g in incident.gpus})
    if incident.root_cause.kind == "gpu":
        ref = GpuRef.parse(incident.root_cause.id)
        return f'DCGM_FI_DEV_GPU_TEMP{{Hostname="{ref.node}",gpu="{ref.gpu}"}}'
    if len(nodes) == 1:
        return f'DCGM_FI_DEV_GPU_TEMP{{Hostname="{nodes[0]}"}}'
    if not nodes and incident.root_cause.kind == "node":
        return f'DCGM_FI_DEV_GPU_TEMP{{Hostname="{incident.root_cause.id}"}}'
    return f'DCGM_FI_DEV_GPU_TEMP{{Hostname=~"{"|".join(nodes)}"}}'


#: The shipped Grafana dashboard (``deploy/grafana/gpu-risk-dashboard.json``): uid and URL slug.
DASHBOARD_UID = "gpu-risk-fleet"
DASHBOARD_SLUG = "gpu-risk"
#: A dashboard link shows this long before the incident's time and this long after it.
DASHBOARD_BEFORE = timedelta(hours=6)
DASHBOARD_AFTER = timedelta(hours=1)
#: More affected nodes than this and the link selects every node (the URL stays short).
MAX_LINKED_NODES = 10
ALL = "$__all"  # Grafana's URL value of a variable's "All" option


def incident_node(incident: Incident) -> str | None:
    """The node an incident is about: its root cause's node, or None (a rack or component)."""
    if incident.root_cause.kind == "gpu":
        return GpuRef.parse(incident.root_cause.id).node
    if incident.root_cause.kind == "node":
        return incident.root_cause.id
    return None


def dashboard_url(
    grafana_url: str, incident: Incident, *, rack: str | None = None, end: datetime | None = None
) -> str:
    """The shipped dashboard at the incident's time range, its node(s) and rack selected.

    ``{grafana}/d/{uid}/gpu-risk?orgId=1&from={ms}&to={ms}&var-Hostname={node}&var-rack={rack}``:
    from ``DASHBOARD_BEFORE`` before ``incident.at`` to ``DASHBOARD_AFTER`` after ``end``
    (default ``incident.at``); an unknown rack or too many nodes select "All".
    """
    node = incident_node(incident)
    nodes = [node] if node else sorted({g.node for g in incident.gpus})
    if not nodes or len(nodes) > MAX_LINKED_NODES:
        nodes = [ALL]
    if rack is None and incident.root_cause.kind == "rack":
        rack = incident.root_cause.id
    start = incident.at - DASHBOARD_BEFORE
    stop = (end if end is not None else incident.at) + DASHBOARD_AFTER
    query = [
        ("orgId", "1"),
        ("from", str(int(start.timestamp() * 1000))),
        ("to", str(int(stop.timestamp() * 1000))),
        *(("var-Hostname", n) for n in nodes),
        ("var-rack", rack or ALL),
    ]
    base = grafana_url.rstrip("/")
    return f"{base}/d/{DASHBOARD_UID}/{DASHBOARD_SLUG}?{urlencode(query, safe='$')}"


def link_text(incident: Incident, opts: BlockOptions) -> str:
    """Links to the Grafana dashboard, Grafana Explore and the Prometheus UI when configured."""
    expr = promql_for(incident)
    links = []
    if opts.grafana_url:
        links.append(f"<{dashboard_url(opts.grafana_url, incident)}|Grafana>")
        left = json.dumps(
            {"queries": [{"refId": "A", "expr": expr}], "range": {"from": "now-6h", "to": "now"}},
            separators=(",", ":"),
        )
        links.append(f"<{opts.grafana_url.rstrip('/')}/explore?left={quote(left)}|Explore>")
    if opts.prometheus_ui_url:
        url = f"{opts.prometheus_ui_url.rstrip('/')}/graph?g0.expr={quote(expr)}&g0.range_input=6h"
        links.append(f"<{url}|Prometheus>")
    return " · ".join(links)


def state_blocks(state: AlertState) -> list[Block]:
    """One context line per thing people did to the alert."""
    lines = []
    if state.acked_by:
        lines.append(
            f":eyes: Acknowledged by {mention(state.acked_by)} at {fmt_time(state.acked_at)}"
        )
    if state.silenced_until:
        who = f" by {mention(state.silenced_by)}" if state.silenced_by else ""
        why = f": {escape(state.silence_reason)}" if state.silence_reason else ""
        lines.append(f":zzz: Silenced until {fmt_time(state.silenced_until)}{who}{why}")
    if state.false_alarm_by:
        lines.append(
            f":no_entry_sign: Marked a false alarm by {mention(state.false_alarm_by)} at "
            f"{fmt_time(state.false_alarm_at)}"
        )
    if state.status == "resolved" and state.merged_into:
        lines.append(
            f":arrow_heading_up: Merged at {fmt_time(state.resolved_at)} into "
            f"*{escape(state.merged_into)}*"
        )
    elif state.status == "resolved":
        lines.append(f":white_check_mark: Resolved at {fmt_time(state.resolved_at)}")
    return [context(*lines)] if lines else []


def alert_actions(incident_id: str) -> ActionsBlock:
    """The buttons: Acknowledge, Silence 4h, Silence…, False alarm (value = incident id)."""

    def button(text: str, action_id: str, style: str | None = None) -> ButtonElement:
        """One button carrying the incident id."""
        return ButtonElement(
            text=PlainTextObject(text=text), action_id=action_id, value=incident_id, style=style
        )

    return ActionsBlock(
        block_id=ACTIONS_BLOCK_ID,
        elements=[
            button("Acknowledge", ACTION_ACK, "primary"),
            button("Silence 4h", ACTION_SILENCE_4H),
            button("Silence…", ACTION_SILENCE_MODAL),
            button("False alarm", ACTION_FALSE_ALARM, "danger"),
        ],
    )


def worse_reply_blocks(
    previous: Incident, current: Incident, options: BlockOptions | None = None
) -> Blocks:
    """Thread reply when the same incident got worse: what changed, and the new explanation."""
    opts = options or BlockOptions()
    changes = []
    if previous.severity != current.severity:
        changes.append(f"severity {previous.severity} → *{current.severity}*")
    if round(previous.score, 2) != round(current.score, 2):
        changes.append(f"risk {previous.score:.2f} → *{current.score:.2f}*")
    if len(previous.gpus) != len(current.gpus):
        changes.append(f"GPUs at risk {len(previous.gpus)} → *{len(current.gpus)}*")
    new = sorted({g.key for g in current.gpus} - {g.key for g in previous.gpus})
    blocks: list[Block] = [
        section(f":arrow_up: *Worse:* {', '.join(changes) or 'the explanation changed'}")
    ]
    if new:
        blocks.append(section(f"*Newly at risk*\n{collapse([f'`{k}`' for k in new], 8)}"))
    blocks.extend(explanation_blocks(current, opts))
    blocks.append(context(f"Updated {fmt_time(current.at)}"))
    return fit(blocks)


def worse_reply_text(previous: Incident, current: Incident) -> str:
    """Fallback text of the "worse" thread reply."""
    parts = [f"Worse: {current.title}"]
    if previous.severity != current.severity:
        parts.append(f"{previous.severity} -> {current.severity}")
    if round(previous.score, 2) != round(current.score, 2):
        parts.append(f"risk {previous.score:.2f} -> {current.score:.2f}")
    else:
        parts.append(f"risk {current.score:.2f}")
    return plain_text(", ".join(parts))


def better_reply_blocks(previous: Incident | None, current: Incident) -> Blocks:
    """Thread reply when the same incident got better but is still open."""
    was = f" (was {previous.severity}, risk {previous.score:.2f})" if previous is not None else ""
    return fit(
        [
            section(
                f":arrow_down: *Better:* now {current.severity}, risk {current.score:.2f}, "
                f"{len(current.gpus)} GPU(s) at risk{was}."
            )
        ]
    )


def resolved_reply_blocks(incident: Incident, reason: str = "", merged_into: str = "") -> Blocks:
    """Thread reply when an incident resolves (or is merged into a broader one)."""
    if merged_into:
        return fit(
            [
                section(
                    f":arrow_heading_up: *Merged* at {fmt_time(incident.at)} into "
                    f"*{escape(merged_into)}*: its GPUs are part of that incident now, one "
                    "alert for the shared cause. This is no all-clear: follow that incident."
                )
            ]
        )
    why = f" {escape(reason)}" if reason else ""
    return fit(
        [
            section(
                f":white_check_mark: *Resolved* at {fmt_time(incident.at)}: "
                f"{escape(incident.title)}.{why}"
            )
        ]
    )


def recurrence_text(incident_id: int, first_seen: datetime, resolved_at: datetime) -> str:
    """The note in a new alert's thread: its root cause was an incident resolved shortly before."""
    return (
        f":repeat: *Fired again*: the same root cause was incident #{incident_id}, open "
        f"{fmt_time(first_seen)} – {fmt_time(resolved_at)}. A fault that comes back after a "
        "quiet spell is rarely repaired: check the hardware before resolving this one."
    )


def fired_again_text(incident: Incident, record_id: int | None) -> str:
    """The note in the resolved incident's thread when its root cause fires again."""
    which = f" as incident #{record_id}" if record_id is not None else ""
    return (
        f":repeat: *Fired again* at {fmt_time(incident.at)}{which}: "
        f"{escape(incident.title)} (a new alert in the channel)."
    )


def data_source_text(state: str, cluster: str = "") -> str:
    """The one message posted when the metrics source (of ``cluster``) degrades (``state``) or
    recovers."""
    source = f"Metrics source of cluster `{escape(cluster)}`" if cluster else "Metrics source"
    if state == "degraded":
        return f":warning: {source} degraded: scans are failing; open incidents stay open."
    return f":white_check_mark: {source} recovered: scans are running again."


def note_blocks(text: str) -> Blocks:
    """A one-section thread note (e.g. "Acknowledged by ...")."""
    return fit([section(text)])


def divider() -> dict[str, Any]:
    """A divider block as a dict."""
    return DividerBlock().to_dict()


def images_comment(incident: Incident, names: Sequence[str]) -> str:
    """The comment posted with the alert's images in its thread."""
    return plain_text(f"{incident.title}: {', '.join(names)}")
