"""The one delivery loop over the outbox: claim, send, confirm or schedule a retry.

Any sender fits (Slack, the terminal preview): a callable that sends one outbox row and returns
the message it created (or None). Nothing is lost while the sender fails: the row is marked
failed with a retry time and claimed again on a later round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from storage.repository import MessageRef, OutboxItem, Repository

logger = logging.getLogger(__name__)

Send = Callable[[OutboxItem], MessageRef | None]


def deliver(
    repo: Repository,
    send: Send,
    *,
    at: datetime,
    worker_id: str = "notifier",
    limit: int = 50,
    lease: timedelta = timedelta(minutes=2),
    retry_in: timedelta = timedelta(seconds=30),
    on_sent: Callable[[OutboxItem], None] | None = None,
    on_failed: Callable[[OutboxItem], None] | None = None,
) -> int:
    """Send every row that is due once; return how many were sent."""
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
