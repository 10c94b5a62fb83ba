"""A notifier that shows each alert as a Slack user would see it, without Slack.

It renders the same Block Kit the Slack notifier posts (``bot/blocks``) as terminal text, and
keeps the Block Kit JSON and the PNGs in a directory, so the demo (and ``gpu-risk run`` without
a Slack token) show exactly what would be posted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from analysis.types import Incident
from bot.blocks.alert import (
    alert_blocks,
    better_reply_blocks,
    note_blocks,
    resolved_reply_blocks,
    worse_reply_blocks,
)
from bot.blocks.common import BlockOptions
from bot.blocks.models import AlertState
from bot.blocks.render import render_text
from storage.repository import DATA_SOURCE_KIND, MessageRef, OutboxItem

logger = logging.getLogger(__name__)

ImageSource = Callable[[int | None], Mapping[str, bytes]]


@dataclass
class PreviewNotifier:
    """Send outbox rows to the terminal (rendered blocks) and to ``out_dir`` (JSON and PNGs)."""

    out_dir: Path | None = None
    console: Console = field(default_factory=Console)
    images: ImageSource | None = None
    options: BlockOptions = field(default_factory=BlockOptions)
    channel: str = "#gpu-alerts (preview)"
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send(self, item: OutboxItem) -> MessageRef | None:
        """Show one outbox row; return the preview message it stands for."""
        if item.kind == DATA_SOURCE_KIND:
            state = item.payload.get("state", "degraded")
            blocks = note_blocks(
                ":warning: Metrics source degraded: scans are failing; open incidents stay open."
                if state == "degraded"
                else ":white_check_mark: Metrics source recovered: scans are running again."
            )
            self._show(item, blocks, thread=False)
            return None
        incident = Incident.from_dict(item.payload["incident"])
        previous = replace(
            incident, severity=item.payload.get("previous_severity") or incident.severity
        )
        if item.kind == "post":
            blocks = alert_blocks(incident, None, self.options, record_id=item.incident_id)
            self._show(item, blocks, thread=False)
            self._save_images(item)
            n = len([s for s in self.sent if s["kind"] == "post"])
            return MessageRef(channel=self.channel, ts=f"{n}.000000")
        if item.kind == "update":
            blocks = worse_reply_blocks(previous, incident, self.options)
        elif item.kind == "improve":
            blocks = better_reply_blocks(previous, incident)
        elif item.kind == "resolve":
            blocks = resolved_reply_blocks(incident, str(item.payload.get("reason", "")))
            resolved = AlertState(status="resolved")
            self._save(item, alert_blocks(incident, resolved, self.options), suffix="edited")
        else:
            raise ValueError(f"unknown outbox kind {item.kind!r}")
        self._show(item, blocks, thread=True)
        return item.message_ref

    def _show(self, item: OutboxItem, blocks: list[dict[str, Any]], *, thread: bool) -> None:
        """Print the rendered blocks and keep their JSON."""
        where = "  ↳ thread reply" if thread else f"── new message in {self.channel}"
        self.console.print(f"[dim]{where}[/]")
        text = render_text(blocks)
        self.console.print(
            ("    " + text.replace("\n", "\n    ")) if thread else text, highlight=False
        )
        self.console.print()
        self.sent.append({"kind": item.kind, "incident_id": item.incident_id, "blocks": blocks})
        self._save(item, blocks)

    def _save(self, item: OutboxItem, blocks: list[dict[str, Any]], suffix: str = "") -> None:
        """Write the Block Kit JSON of one message to the output directory."""
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        name = (
            f"{item.id:04d}-{item.kind}-incident-{item.incident_id}{'-' + suffix if suffix else ''}"
        )
        (self.out_dir / f"{name}.json").write_text(
            json.dumps({"blocks": blocks}, indent=2), encoding="utf-8"
        )

    def _save_images(self, item: OutboxItem) -> None:
        """Write the incident's PNGs next to its blocks."""
        if self.out_dir is None or self.images is None:
            return
        for name, png in self.images(item.incident_id).items():
            path = self.out_dir / f"incident-{item.incident_id}-{name}.png"
            path.write_bytes(png)
            self.console.print(f"    [dim]📎 {path}[/]")
