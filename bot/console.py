"""The notifier used when Slack is not configured: each outbox row printed readably.

It renders the same Block Kit the Slack notifier posts (``bot/blocks``) as terminal text. With a
``log_path`` (``GPU_RISK_CONSOLE_LOG``) it also appends one JSON line per notification, fsynced,
so a run can be audited (and tested) from outside the database: the log is the "channel".

Like the Slack notifier, it reconciles a retried row (``OutboxItem.is_retry``: the process may
have died after showing it and before the outbox commit) by looking its idempotency key up in
the log first, so a crash never shows the same notification twice there.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from analysis.types import Incident
from bot.blocks.alert import (
    alert_blocks,
    better_reply_blocks,
    data_source_text,
    note_blocks,
    resolved_reply_blocks,
    worse_reply_blocks,
)
from bot.blocks.common import BlockOptions
from bot.blocks.render import render_text
from storage.repository import DATA_SOURCE_KIND, MessageRef, OutboxItem

logger = logging.getLogger(__name__)

CHANNEL = "console"
THREAD_KINDS = frozenset({"update", "improve", "resolve"})


@dataclass
class ConsoleNotifier:
    """Print outbox rows as a Slack user would read them; optionally log them as JSON lines."""

    images: Callable[[int], Mapping[str, bytes]] | None = None
    log_path: Path | None = None
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    options: BlockOptions = field(default_factory=BlockOptions)
    out_dir: Path | None = None  # keep each message's Block Kit JSON and the PNGs here (demo)

    def send(self, item: OutboxItem) -> MessageRef | None:
        """Show one outbox row (once, even when retried after a crash); return its message."""
        if item.is_retry:
            earlier = self.logged(item.idempotency_key)
            if earlier is not None:
                logger.info("outbox row %s was already shown before a restart", item.id)
                return _ref(earlier)
        blocks, names = self._blocks(item)
        ref = MessageRef(CHANNEL, f"{item.id}.000000") if item.kind == "post" else None
        title = f"[{item.kind}]" + (f" incident #{item.incident_id}" if item.incident_id else "")
        if item.kind in THREAD_KINDS:
            title += " (thread reply)"
        self._print(title, render_text(blocks), self._keep(item, blocks, names))
        self._log(
            {
                "key": item.idempotency_key,
                "outbox_id": item.id,
                "kind": item.kind,
                "incident_id": item.incident_id,
                "dedup_key": item.payload.get("dedup_key"),
                "state": item.payload.get("state"),
                "images": names,
                "ts": ref.ts if ref else None,
                "pid": os.getpid(),
            }
        )
        return ref if ref is not None else item.message_ref

    def post_text(self, text: str) -> None:
        """Show a free-standing message (the daily digest)."""
        self._print("[message]", text, [])
        self._log({"key": None, "kind": "text", "text": text, "pid": os.getpid()})

    def logged(self, key: str) -> dict[str, Any] | None:
        """Return the log entry of an idempotency key, or None (no log, or not there)."""
        if self.log_path is None or not self.log_path.is_file():
            return None
        with self.log_path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:  # a line cut short by a crash mid-write
                    continue
                if entry.get("key") == key:
                    return dict(entry)
        return None

    # ------------------------------------------------------------------ internals

    def _blocks(self, item: OutboxItem) -> tuple[list[dict[str, Any]], list[str]]:
        """Return the Block Kit of one row and the names of images that go with it."""
        if item.kind == DATA_SOURCE_KIND:
            state = item.payload.get("state", "degraded")
            return note_blocks(data_source_text(state)), []
        incident = Incident.from_dict(item.payload["incident"])
        previous = replace(
            incident, severity=item.payload.get("previous_severity") or incident.severity
        )
        if item.kind == "post":
            pictures = (
                self.images(item.incident_id)
                if self.images is not None and item.incident_id is not None
                else {}
            )
            blocks = alert_blocks(incident, None, self.options, record_id=item.incident_id)
            return blocks, sorted(pictures)
        if item.kind == "update":
            return worse_reply_blocks(previous, incident, self.options), []
        if item.kind == "improve":
            return better_reply_blocks(previous, incident), []
        if item.kind == "resolve":
            return resolved_reply_blocks(incident, str(item.payload.get("reason", ""))), []
        raise ValueError(f"unknown outbox kind {item.kind!r}")

    def _keep(self, item: OutboxItem, blocks: list[dict[str, Any]], names: list[str]) -> list[str]:
        """Write the message's Block Kit JSON and its PNGs to ``out_dir``; return what to list."""
        if self.out_dir is None:
            return names
        self.out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{item.id:04d}-{item.kind}" + (
            f"-incident-{item.incident_id}" if item.incident_id else ""
        )
        (self.out_dir / f"{stem}.json").write_text(
            json.dumps({"blocks": blocks}, indent=2), "utf-8"
        )
        if not names or self.images is None or item.incident_id is None:
            return names
        paths = []
        for name, png in sorted(self.images(item.incident_id).items()):
            path = self.out_dir / f"incident-{item.incident_id}-{name}.png"
            path.write_bytes(png)
            paths.append(str(path))
        return paths

    def _print(self, title: str, body: str, images: list[str]) -> None:
        """Write one notification to the stream."""
        lines = [f"── {title} " + "─" * max(0, 60 - len(title)), body]
        if images:
            lines.append(f"(images: {', '.join(images)})")
        self.stream.write("\n".join(lines) + "\n\n")
        self.stream.flush()

    def _log(self, entry: dict[str, Any]) -> None:
        """Append one JSON line to the log and fsync it (one write: atomic with O_APPEND)."""
        if self.log_path is None:
            return
        data = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def _ref(entry: Mapping[str, Any]) -> MessageRef | None:
    """The message a logged post stands for."""
    ts = entry.get("ts")
    return MessageRef(CHANNEL, str(ts)) if ts else None


def read_log(path: Path) -> list[dict[str, Any]]:
    """Return every complete JSON line of a console log (a torn last line is skipped)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            logger.warning("skipping a torn line in %s", path)
    return out
