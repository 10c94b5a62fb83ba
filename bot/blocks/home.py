"""The App Home tab: the fleet at a glance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import Block, DividerBlock
from slack_sdk.models.views import View

from analysis.types import GpuScore
from bot.blocks.answers import incident_line, status_blocks
from bot.blocks.common import MAX_VIEW_BLOCKS, collapse, escape, fit, header, section
from bot.blocks.models import IncidentView, StatusView

MAX_RACKS = 30


def home_view(
    at_risk_by_rack: Mapping[str, Sequence[GpuScore]],
    incidents: Sequence[IncidentView],
    status: StatusView,
) -> dict[str, Any]:
    """The Home tab: at-risk GPUs by rack, open incidents, last scan and data health."""
    blocks: list[Block | dict[str, Any]] = [header("GPU fleet at a glance")]
    blocks.extend(status_blocks(status)[1:])  # fields without the status header
    blocks.append(DividerBlock())
    blocks.append(header(f"At-risk GPUs by rack ({sum(len(v) for v in at_risk_by_rack.values())})"))
    if not any(at_risk_by_rack.values()):
        blocks.append(section(":white_check_mark: No GPU above the risk threshold."))
    racks = sorted(
        ((r, g) for r, g in at_risk_by_rack.items() if g), key=lambda kv: (-len(kv[1]), kv[0])
    )
    if len(racks) > MAX_RACKS:
        rest = racks[MAX_RACKS:]
        racks = racks[:MAX_RACKS]
    else:
        rest = []
    for rack, gpus in racks:
        ranked = sorted(gpus, key=lambda g: -g.score)
        items = [f"`{escape(g.key)}` {g.score:.2f}" for g in ranked]
        blocks.append(section(f"*{escape(rack)}* — {len(ranked)} GPU(s)\n{collapse(items, 12)}"))
    if rest:
        n = sum(len(g) for _, g in rest)
        blocks.append(section(f"_… and {len(rest)} more racks with {n} at-risk GPUs_"))
    blocks.append(DividerBlock())
    blocks.append(header(f"Open incidents ({len(incidents)})"))
    ranked_inc = sorted(incidents, key=lambda v: -v.incident.score)
    if ranked_inc:
        lines = [incident_line(v) for v in ranked_inc[:20]]
        if len(ranked_inc) > 20:
            lines.append(f"_… and {len(ranked_inc) - 20} more_")
        blocks.append(section("\n".join(lines)))
    else:
        blocks.append(section("None."))
    view = View(type="home", blocks=fit(blocks, MAX_VIEW_BLOCKS))
    return view.to_dict()
