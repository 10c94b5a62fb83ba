"""The sink used when Slack is not configured: each notification printed readably.

It renders the same Block Kit the Slack notifier posts (``bot/blocks``) as terminal text. With a
``log_path`` (``GPU_RISK_CONSOLE_LOG``) it also appends one JSON line per notification, fsynced,
so a run can be audited (and tested) from outside the database: the log is the "channel". With
an ``out_dir`` (the demo) it keeps each message's Block Kit JSON and its PNGs there.

Like the Slack sink, it reconciles a retried row (``is_retry``: the process may have died after
showing it and before the outbox commit) by looking its idempotency key up in the log first, so
a crash never shows the same notification twice there.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from analysis.lifecycle import Action
from bot.blocks.alert import (
    alert_blocks,
    better_reply_blocks,
    data_source_text,
    note_blocks,
    recurrence_text,
    resolved_reply_blocks,
    worse_reply_blocks,
)
from bot.blocks.common import BlockOptions
from bot.blocks.render import mrkdwn_to_text, render_text
from bot.sinks.base import DataSourceNote, Envelope, Notification
from storage.repository import DATA_SOURCE_KIND, MessageRef

logger = logging.getLogger(__name__)

CHANNEL = "console"
THREAD_KINDS = frozenset({Action.UPDATE.value, Action.IMPROVE.value, Action.RESOLVE.value})

Blocks = list[dict[str, Any]]
Rendered = tuple[Blocks, Mapping[str, bytes]]  # a message's Block Kit and the PNGs going with it


@dataclass
class ConsoleSink:
    """Print notifications as a Slack user would read them; optionally log them as JSON lines."""

    images: Callable[[int], Mapping[str, bytes]] | None = None
    log_path: Path | None = None
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    options: BlockOptions = field(default_factory=BlockOptions)
    out_dir: Path | None = None  # keep each message's Block Kit JSON and the PNGs here (demo)
    cluster: str = ""  # named in messages whose row names no cluster (GPU_RISK_CLUSTER)

    # ------------------------------------------------------------------ Sink

    def post(self, note: Notification) -> MessageRef | None:
        """Show the alert with the names of its images; return its (console) message."""

        def render() -> Rendered:
            """The alert and the incident's stored PNGs."""
            pictures = (
                self.images(note.record_id)
                if self.images is not None and note.record_id is not None
                else {}
            )
            blocks = alert_blocks(
                note.incident,
                None,
                self.options,
                record_id=note.record_id,
                cluster=note.cluster or self.cluster,
            )
            if note.recurs is not None:  # the same root cause, resolved shortly before
                was = note.recurs
                text = recurrence_text(was.incident_id, was.first_seen, was.resolved_at)
                blocks = [*blocks, *note_blocks(text)]
            return blocks, pictures

        return self._show(
            Action.POST.value, note, render, record_id=note.record_id, dedup=note.dedup_key
        )

    def update(self, note: Notification) -> MessageRef | None:
        """Show what got worse (a thread reply in Slack)."""
        return self._show(
            Action.UPDATE.value,
            note,
            lambda: (worse_reply_blocks(note.previous, note.incident, self.options), {}),
            record_id=note.record_id,
            dedup=note.dedup_key,
        )

    def improve(self, note: Notification) -> MessageRef | None:
        """Show what got better (a thread reply in Slack)."""
        return self._show(
            Action.IMPROVE.value,
            note,
            lambda: (better_reply_blocks(note.previous, note.incident), {}),
            record_id=note.record_id,
            dedup=note.dedup_key,
        )

    def resolve(self, note: Notification) -> MessageRef | None:
        """Show that the incident is resolved and why (a thread reply in Slack)."""
        return self._show(
            Action.RESOLVE.value,
            note,
            lambda: (resolved_reply_blocks(note.incident, note.reason, note.merged_into), {}),
            record_id=note.record_id,
            dedup=note.dedup_key,
        )

    def data_source(self, note: DataSourceNote) -> MessageRef | None:
        """Show that the metrics source degraded or recovered."""
        return self._show(
            DATA_SOURCE_KIND,
            note,
            lambda: (note_blocks(data_source_text(note.state, note.cluster or self.cluster)), {}),
            state=note.state,
        )

    def post_text(self, text: str) -> None:
        """Show a free-standing message (the daily digest) as plain text (dates in UTC)."""
        self._print("[message]", mrkdwn_to_text(text), [])
        self._log({"key": None, "kind": "text", "text": text, "pid": os.getpid()})

    # ------------------------------------------------------------------ helpers

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

    def _show(
        self,
        kind: str,
        note: Envelope,
        render: Callable[[], Rendered],
        *,
        record_id: int | None = None,
        dedup: str | None = None,
        state: str | None = None,
    ) -> MessageRef | None:
        """Print, keep and log one notification (once, even when retried after a crash)."""
        if note.is_retry:
            earlier = self.logged(note.idempotency_key)
            if earlier is not None:
                logger.info("outbox row %s was already shown before a restart", note.outbox_id)
                return _ref(earlier)
        blocks, pictures = render()
        names = sorted(pictures)
        ref = MessageRef(CHANNEL, f"{note.outbox_id}.000000") if kind == Action.POST.value else None
        title = f"[{kind}]" + (f" incident #{record_id}" if record_id else "")
        if kind in THREAD_KINDS:
            title += " (thread reply)"
        paths = self._keep(f"{note.outbox_id:04d}-{kind}", record_id, blocks, pictures)
        self._print(title, render_text(blocks), paths or names)
        self._log(
            {
                "key": note.idempotency_key,
                "outbox_id": note.outbox_id,
                "kind": kind,
                "incident_id": record_id,
                "dedup_key": dedup,
                "state": state,
                "images": names,
                "ts": ref.ts if ref else None,
                "pid": os.getpid(),
                **({"cluster": note.cluster} if note.cluster else {}),
            }
        )
        return ref if ref is not None else note.message_ref

    def _keep(
        self,
        stem: str,
        record_id: int | None,
        blocks: Blocks,
        pictures: Mapping[str, bytes],
    ) -> list[str]:
        """Write the message's Block Kit JSON and its PNGs to ``out_dir``; return the PNG paths."""
        if self.out_dir is None:
            return []
        self.out_dir.mkdir(parents=True, exist_ok=True)
        stem += f"-incident-{record_id}" if record_id else ""
        (self.out_dir / f"{stem}.json").write_text(
            json.dumps({"blocks": blocks}, indent=2), "utf-8"
        )
        if record_id is None:
            return []
        paths = []
        for name, png in sorted(pictures.items()):
            path = self.out_dir / f"incident-{record_id}-{name}.png"
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
