"""Answers to ``/gpu-risk``: top, why, graph, whatif, status, help, silence and the errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import Block

from analysis.feedback import Allowance, Verdict
from analysis.types import GpuScore
from bot.blocks.alert import explanation_blocks, gpu_list, link_text, state_blocks
from bot.blocks.common import (
    SEVERITY_EMOJI,
    BlockOptions,
    collapse,
    context,
    escape,
    fit,
    fmt_age,
    fmt_time,
    header,
    mention,
    section,
)
from bot.blocks.models import IncidentView, MaintenanceView, StatusView

Blocks = list[dict[str, Any]]

USAGE = (
    "Usage: `/gpu-risk [top | why <node|node/gpu|component> | graph <node|component> | "
    "whatif <component|node> | silence <target> <duration> [reason] | unsilence <target> | "
    "maintenance add|list|remove ... | status | help] [public]`"
)

HELP_LINES = (
    ("`/gpu-risk` or `/gpu-risk top`", "ranked open incidents and the riskiest GPUs"),
    ("`/gpu-risk why <node | node/gpu | component>`", "the explanation, with its images"),
    ("`/gpu-risk graph <node | component>`", "the dependency picture around it"),
    ("`/gpu-risk whatif <component | node>`", "blast radius: what goes down with it"),
    ("`/gpu-risk silence <target> <duration> [reason]`", "e.g. `silence pdu-a1 4h maintenance`"),
    ("`/gpu-risk unsilence <target>`", "lift a silence"),
    (
        "`/gpu-risk maintenance add <target> <duration> [at HH:MM] [on mon,tue,...] [reason]`",
        "planned work: alerts inside are recorded, not posted; one-off from now, or every day "
        "(or the given weekdays) from `at` UTC, e.g. `maintenance add rack-a1 4h at 02:00 on sun`",
    ),
    ("`/gpu-risk maintenance list` / `remove <id>`", "the windows and their ids; remove one"),
    ("`/gpu-risk status`", "last scan, data source health, model age, open incidents"),
    ("`/gpu-risk help`", "this help"),
)


def incident_line(view: IncidentView) -> str:
    """One ranked line for an incident, with a link to its alert when it has one."""
    inc = view.incident
    emoji = SEVERITY_EMOJI.get(inc.severity, "")
    title = escape(inc.title)
    if view.channel and view.ts:
        title = f"<{message_link(view.channel, view.ts)}|{title}>"
    state = f" · _{view.state.status}_" if view.state.status != "open" else ""
    return f"{emoji} {title} — risk {inc.score:.2f}, {len(inc.gpus)} GPU(s){state}"


def message_link(channel: str, ts: str) -> str:
    """A link to a message (Slack redirects slack.com/archives to the workspace)."""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def top_blocks(
    incidents: Sequence[IncidentView], riskiest: Sequence[GpuScore], *, limit: int = 10
) -> Blocks:
    """Ranked open incidents and the riskiest GPUs."""
    ranked = sorted(incidents, key=lambda v: -v.incident.score)
    blocks: list[Block] = [header(f"GPU risk: {len(ranked)} open incident(s)")]
    if ranked:
        lines = [f"{i}. {incident_line(v)}" for i, v in enumerate(ranked[:limit], 1)]
        if len(ranked) > limit:
            lines.append(f"_… and {len(ranked) - limit} more_")
        blocks.append(section("\n".join(lines)))
    else:
        blocks.append(section(":white_check_mark: No open incidents."))
    top = sorted(riskiest, key=lambda g: -g.score)[:limit]
    if top:
        rows = [f"`{escape(g.key)}` {g.score:.2f}" for g in top]
        blocks.append(section("*Riskiest GPUs*\n" + "\n".join(rows)))
    return fit(blocks)


def why_blocks(
    view: IncidentView, options: BlockOptions | None = None, *, images_note: str = ""
) -> Blocks:
    """The explanation of one incident, with where its images are."""
    opts = options or BlockOptions()
    inc = view.incident
    blocks: list[Block] = [header(inc.title)]
    blocks.append(
        section(
            f"{SEVERITY_EMOJI.get(inc.severity, '')} *{inc.severity}* · risk {inc.score:.2f} · "
            f"root cause {inc.root_cause.kind} `{escape(inc.root_cause.id)}`"
        )
    )
    blocks.extend(explanation_blocks(inc, opts))
    blocks.append(section(f"*Affected GPUs*\n{gpu_list(inc, opts.max_gpus_shown)}"))
    blocks.extend(state_blocks(view.state))
    where = []
    if view.channel and view.ts:
        where.append(f"<{message_link(view.channel, view.ts)}|Alert and images>")
    links = link_text(inc, opts)
    blocks.append(context(" · ".join(x for x in (*where, links, images_note) if x) or " "))
    return fit(blocks)


def healthy_blocks(entity: str, kind: str, score: float | None) -> Blocks:
    """``why`` for something known but with no open incident."""
    risk = f" Its latest risk is {score:.2f}." if score is not None else ""
    return fit(
        [section(f":white_check_mark: No open incident on {kind} `{escape(entity)}`.{risk}")]
    )


def graph_blocks(
    entity: str,
    kind: str,
    upstream: Mapping[str, Sequence[str]],
    downstream: Mapping[str, Sequence[str]],
    scores: Mapping[str, float],
) -> Blocks:
    """The dependency picture: what ``entity`` depends on and what depends on it."""
    blocks: list[Block] = [header(f"Dependencies of {kind} {entity}")]
    up = [f"*{k}*: {collapse([f'`{escape(x)}`' for x in v], 12)}" for k, v in upstream.items() if v]
    blocks.append(section("*Depends on*\n" + ("\n".join(up) or "_nothing upstream_")))
    down = []
    for k, v in downstream.items():
        if not v:
            continue
        items = [f"`{escape(x)}`" + (f" {scores[x]:.2f}" if x in scores else "") for x in v]
        down.append(f"*{k}*: {collapse(items, 16)}")
    blocks.append(section("*Depended on by*\n" + ("\n".join(down) or "_nothing downstream_")))
    return fit(blocks)


def whatif_blocks(
    entity: str, kind: str, nodes: Sequence[str], gpus: Sequence[str], at_risk: Sequence[str]
) -> Blocks:
    """Blast radius: which nodes and GPUs go down with ``entity``, and which are already at risk."""
    blocks: list[Block] = [header(f"What if {kind} {entity} goes down?")]
    blocks.append(
        section(
            f"*{len(nodes)}* node(s) and *{len(gpus)}* GPU(s) go down with `{escape(entity)}`.",
            fields=[
                f"*Nodes*\n{collapse([f'`{escape(n)}`' for n in nodes], 16) or '_none_'}",
                f"*Already at risk*\n{collapse([f'`{escape(g)}`' for g in at_risk], 16) or '_none_'}",
            ],
        )
    )
    return fit(blocks)


def status_blocks(
    status: StatusView,
    allowances: Sequence[Allowance] = (),
    unlearnt: Sequence[Verdict] = (),
    *,
    shown: int = 10,
) -> Blocks:
    """Last scan, data source health, model age, open incidents and what false alarms taught;
    with several clusters, those of each cluster."""
    if status.clusters:
        blocks: list[Block] = [header("gpu-risk status")]
        for name, each in status.clusters:
            blocks.append(section(f"*Cluster `{escape(name)}`*", fields=_status_fields(each)))
            if each.data_detail:
                blocks.append(context(escape(each.data_detail)))
    else:
        blocks = [header("gpu-risk status"), section(" ", fields=_status_fields(status))]
    if status.maintenance:
        blocks.append(section(_maintenance_text("*Maintenance*", status.maintenance, shown=5)))
    if status.data_detail:
        blocks.append(context(escape(status.data_detail)))
    if allowances or unlearnt:
        blocks.extend(_allowance_blocks(allowances, unlearnt, shown))
    return fit(blocks)


def _status_fields(status: StatusView) -> list[str]:
    """Last scan, scan result, data source, model and open incidents as section fields."""
    ok = {True: ":large_green_circle: ok", False: ":red_circle: failing", None: "unknown"}
    health = {True: ":large_green_circle: healthy", False: ":red_circle: degraded", None: "unknown"}
    age = (
        fmt_age((status.now - status.last_scan_at).total_seconds()) if status.last_scan_at else None
    )
    return [
        f"*Last scan*\n{fmt_time(status.last_scan_at)}" + (f" ({age} ago)" if age else ""),
        f"*Scan result*\n{ok[status.last_scan_ok]}"
        + (f", {status.gpus_scored} GPUs scored" if status.gpus_scored is not None else ""),
        f"*Data source*\n{escape(status.data_source)}: {health[status.data_healthy]}",
        f"*Model*\n{escape(status.model_version or 'none yet')}, age {fmt_age(status.model_age_seconds)}",
        f"*Open incidents*\n{status.open_incidents}",
    ]


def _allowance_blocks(
    allowances: Sequence[Allowance], unlearnt: Sequence[Verdict], shown: int
) -> list[Block]:
    """The allowances false-alarm verdicts taught: where, how far, from which incident, whom, until."""
    lines = [
        f"`{escape(a.gpu)}` {escape(a.feature)} up to {a.bound:+.1f} sd (judged {a.judged_z:+.1f}"
        + (", capped" if a.capped else "")
        + f") · incident {a.incident_id} by {mention(a.who)} · expires {fmt_time(a.expires)}"
        for a in allowances
    ]
    if len(lines) > shown:
        lines = [*lines[:shown], f"_… and {len(lines) - shown} more_"]
    text = "\n".join(lines) or "_nothing: the verdicts below teach nothing yet_"
    out: list[Block] = [section(f"*Learnt from false alarms* ({len(allowances)})\n{text}")]
    if unlearnt:
        ids = ", ".join(str(v.incident_id) for v in unlearnt)
        out.append(
            context(
                f"Marked false alarm but seen again since, so they teach nothing: incident {ids}. "
                "Mark them again if they still are false alarms."
            )
        )
    return out


def help_blocks() -> Blocks:
    """Every subcommand with one line each; ``public`` posts the answer to the channel."""
    lines = [f"{cmd} — {what}" for cmd, what in HELP_LINES]
    lines.append("Add `public` to any command to post the answer for the whole channel.")
    return fit([header("gpu-risk help"), section("\n".join(lines))])


def usage_blocks(problem: str) -> Blocks:
    """Malformed input: what was wrong and the usage line."""
    return fit([section(f":warning: {escape(problem)}"), context(USAGE)])


def unknown_blocks(name: str, suggestions: Sequence[str]) -> Blocks:
    """Unknown name: the closest known names."""
    if suggestions:
        alt = ", ".join(f"`{escape(s)}`" for s in suggestions)
        text = f":mag: I don't know `{escape(name)}`. Did you mean {alt}?"
    else:
        text = f":mag: I don't know `{escape(name)}`, and nothing known is close to it."
    return fit([section(text)])


def refusal_blocks(action: str) -> Blocks:
    """A polite refusal for people not allowed to silence or acknowledge."""
    return fit(
        [
            section(
                f":lock: Sorry, only gpu-risk admins may {action}. Ask one of them, or ask "
                "whoever runs the bot to add you to `GPU_RISK_SLACK_ADMINS`."
            )
        ]
    )


def silenced_blocks(target: str, until: datetime, reason: str, user: str) -> Blocks:
    """Confirmation of a silence."""
    why = f" Reason: {escape(reason)}." if reason else ""
    return fit(
        [
            section(
                f":zzz: {mention(user)} silenced `{escape(target)}` until {fmt_time(until)}.{why}"
            )
        ]
    )


def unsilenced_blocks(target: str, lifted: int) -> Blocks:
    """Confirmation of an unsilence (or that there was nothing to lift)."""
    if lifted == 0:
        return fit([section(f"`{escape(target)}` was not silenced.")])
    return fit([section(f":bell: Lifted {lifted} silence(s) on `{escape(target)}`.")])


def error_blocks() -> Blocks:
    """What the one error handler tells the user when something broke on our side."""
    return fit(
        [
            section(
                ":x: Something went wrong on gpu-risk's side; it has been logged. "
                "Try again in a minute, or check `/gpu-risk status`."
            )
        ]
    )


def _when(view: MaintenanceView) -> str:
    """``now, until …`` for an active window, else ``next … – …``."""
    if view.active:
        return f":construction: *now*, until {fmt_time(view.end)}"
    return f"next {fmt_time(view.start)} – {fmt_time(view.end)}"


def maintenance_line(view: MaintenanceView) -> str:
    """One window: target, when (now until / next from-to), schedule, id, who, reason."""
    ident = f"#{view.id}" if view.id is not None else "settings"
    who = f" by {mention(view.who)}" if view.who else ""
    why = f" — {escape(view.reason)}" if view.reason else ""
    return f"`{escape(view.target)}` {_when(view)} · {escape(view.schedule)} · {ident}{who}{why}"


def _maintenance_text(title: str, views: Sequence[MaintenanceView], shown: int) -> str:
    """A titled list of windows, active ones first, then by next start."""
    ordered = sorted(views, key=lambda v: (not v.active, v.start, v.target))
    lines = [maintenance_line(v) for v in ordered[:shown]]
    if len(ordered) > shown:
        lines.append(f"_… and {len(ordered) - shown} more: `/gpu-risk maintenance list`_")
    return f"{title} ({len(views)})\n" + "\n".join(lines)


def maintenance_list_blocks(views: Sequence[MaintenanceView]) -> Blocks:
    """Every maintenance window that is active or still to come."""
    if not views:
        return fit(
            [
                section(
                    "No maintenance windows. Add one with `/gpu-risk maintenance add <target> "
                    "<duration> [at HH:MM] [on mon,tue,...] [reason]`."
                )
            ]
        )
    text = _maintenance_text("*Maintenance windows*", views, shown=40)
    note = (
        "Remove one with `/gpu-risk maintenance remove <id>`; `settings` ones live in the config."
    )
    return fit([section(text), context(note)])


def maintenance_added_blocks(view: MaintenanceView, user: str) -> Blocks:
    """Confirmation of a new window."""
    return fit(
        [
            section(
                f"{mention(user)} added maintenance window #{view.id} on "
                f"`{escape(view.target)}` ({escape(view.schedule)}): {_when(view)}"
                + (f". Reason: {escape(view.reason)}" if view.reason else "")
            ),
            context(
                "Incidents under it are recorded, not posted; still there when it ends, they "
                f"are posted then. Remove it with `/gpu-risk maintenance remove {view.id}`."
            ),
        ]
    )


def maintenance_removed_blocks(window_id: int, view: MaintenanceView | None) -> Blocks:
    """Confirmation of a removal, or that there was no such window."""
    if view is None:
        return fit(
            [
                section(
                    f":mag: There is no maintenance window #{window_id} (any more); see "
                    "`/gpu-risk maintenance list`."
                )
            ]
        )
    return fit(
        [section(f":bell: Removed maintenance window #{window_id} on `{escape(view.target)}`.")]
    )
