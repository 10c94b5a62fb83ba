"""The one delivery loop over the outbox: claim, send, confirm or schedule a retry.

Any ``bot.sinks.Sink`` fits (Slack, the terminal, several at once with ``FanOut``): each claimed
row is handed to ``bot.sinks.dispatch``, which calls the sink's method for the row's kind and
returns the message it created (or None). Nothing is lost while the sink fails: the row is marked
failed with a retry time and claimed again on a later round (a row of a kind this release does
not know is retried too: a newer replica may send it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from bot.sinks.base import Sink, dispatch
from storage.repository import MessageRef, OutboxItem, Repository

logger = logging.getLogger(__name__)

Send = Callable[[OutboxItem], MessageRef | None]
"""The older form of a sender: one outbox row in, its message out (``as_send`` makes one)."""


def as_send(sink: Sink) -> Send:
    """Return a ``Send`` callable that dispatches each outbox row to ``sink``."""

    def send(item: OutboxItem) -> MessageRef | None:
        """Dispatch one row to the sink's method of its kind."""
        return dispatch(sink, item)

    return send


def deliver(
    repo: Repository,
    sink: Sink | Send,
    *,
    at: datetime,
    worker_id: str = "notifier",
    limit: int = 50,
    lease: timedelta = timedelta(minutes=2),
    retry_in: timedelta = timedelta(seconds=30),
    on_sent: Callable[[OutboxItem], None] | None = None,
    on_failed: Callable[[OutboxItem], None] | None = None,
) -> int:
    """Send every row that is due once to ``sink``; return how many were sent.

    ``sink`` is a ``Sink``; a ``Send`` callable is still accepted until every caller passes a
    sink (``bot/wiring.py``, ``bot/commands/demo.py``).
    """
    send = as_send(sink) if isinstance(sink, Sink) else sink
    sent = 0
    for item in repo.claim_pending(limit, worker_id, lease, at=at):
        try:
            ref = send(item)
        except Exception as exc:  # the sink is down or refused: keep the row for a later round
            logger.exception("sending outbox row %s (%s) failed", item.id, item.kind)
            repo.mark_failed(item.id, f"{type(exc).__name__}: {exc}", at + retry_in, at=at)
            if on_failed is not None:
                on_failed(item)
            continue
        repo.mark_sent(item.id, at=at, message_ref=ref, worker_id=worker_id)
        sent += 1
        if on_sent is not None:
            on_sent(item)
    return sent
