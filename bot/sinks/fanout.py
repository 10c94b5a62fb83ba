"""One notification to several sinks (e.g. the demo: Slack and the terminal)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from bot.sinks.base import DataSourceNote, Envelope, Notification, Sink
from storage.repository import MessageRef

logger = logging.getLogger(__name__)

N = TypeVar("N", bound=Envelope)


class FanOut:
    """A sink that sends to a primary sink, then to mirrors; the primary's message is stored.

    The primary is the sink whose messages later steps edit (Slack: an update finds the post
    through the stored reference), so put it first. Only the primary is delivered
    at-least-once: if it raises, no mirror is called and the row is tried again later. A mirror
    that raises is logged and skipped, because retrying the row would send the primary twice.
    """

    def __init__(self, primary: Sink, *mirrors: Sink) -> None:
        """``primary`` decides success and the stored message; ``mirrors`` are best-effort."""
        self.primary = primary
        self.mirrors = mirrors

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """Every sink, primary first."""
        return (self.primary, *self.mirrors)

    def post(self, note: Notification) -> MessageRef | None:
        """Post the alert everywhere; return the primary's message."""
        return self._each(note, lambda sink: sink.post)

    def update(self, note: Notification) -> MessageRef | None:
        """Say it got worse everywhere; return the primary's message."""
        return self._each(note, lambda sink: sink.update)

    def improve(self, note: Notification) -> MessageRef | None:
        """Say it got better everywhere; return the primary's message."""
        return self._each(note, lambda sink: sink.improve)

    def resolve(self, note: Notification) -> MessageRef | None:
        """Say it is resolved everywhere; return the primary's message."""
        return self._each(note, lambda sink: sink.resolve)

    def data_source(self, note: DataSourceNote) -> MessageRef | None:
        """Say the data source changed everywhere; return the primary's message."""
        return self._each(note, lambda sink: sink.data_source)

    def post_text(self, text: str) -> None:
        """Post a free-standing message everywhere (the primary's failure propagates)."""
        self.primary.post_text(text)
        for mirror in self.mirrors:
            try:
                mirror.post_text(text)
            except Exception:
                logger.exception("mirror sink %s failed to post a text message", _name(mirror))

    def _each(
        self, note: N, method: Callable[[Sink], Callable[[N], MessageRef | None]]
    ) -> MessageRef | None:
        """Call ``method`` of the primary (errors propagate), then of each mirror (logged)."""
        ref = method(self.primary)(note)
        for mirror in self.mirrors:
            try:
                method(mirror)(note)
            except Exception:
                logger.exception(
                    "mirror sink %s failed on outbox row %s (%s): not retried",
                    _name(mirror),
                    note.outbox_id,
                    note.idempotency_key,
                )
        return ref


def _name(sink: Sink) -> str:
    """A sink's class name for logs."""
    return type(sink).__name__
