"""The one delivery loop over the outbox: claim, send, confirm or schedule a retry.

Any ``bot.sinks.Sink`` fits (Slack, the terminal, several at once with ``FanOut``): each claimed
row is handed to ``bot.sinks.dispatch``, which calls the sink's method for the row's kind and
returns the message it created (or None). While the sink fails the row is marked failed with a
retry time that doubles per attempt (``Retry.delay``: at least what a 429's Retry-After asked
for) and claimed again on a later round (a row of a kind this release does not know is retried
too: a newer replica may send it). After ``Retry.max_attempts`` the row becomes a dead letter:
logged once as an error, counted by ``on_dead``, never claimed again until an admin revives it
(``Repository.retry_dead``).

The loop runs in its own scheduler job, never in the scan's: a slow or failing sink delays only
notifications, never a scan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.sinks.base import Sink, dispatch
from storage.repository import OutboxItem, Repository

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retry:
    """How failed sends are retried: ``first`` after the first failure, doubling up to ``cap``;
    a row dies after ``max_attempts`` attempts (None: never)."""

    first: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(minutes=15)
    max_attempts: int | None = 8

    def delay(self, attempts: int, asked: timedelta | None = None) -> timedelta:
        """Return the wait before the next attempt after ``attempts`` tries (>= ``asked``)."""
        base = min(self.cap, self.first * (2 ** min(max(attempts - 1, 0), 20)))
        return max(base, asked) if asked is not None else base

    def gives_up(self, attempts: int) -> bool:
        """Return True when ``attempts`` tries were the last allowed."""
        return self.max_attempts is not None and attempts >= self.max_attempts


def retry_after(exc: BaseException) -> timedelta | None:
    """Return the Retry-After an HTTP error carries (a Slack 429), or None."""
    response: Any = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, value in dict(headers).items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return timedelta(seconds=max(0.0, float(raw)))
            except (TypeError, ValueError):
                return None
    return None


def deliver(
    repo: Repository,
    sink: Sink,
    *,
    at: datetime,
    worker_id: str = "notifier",
    limit: int = 50,
    lease: timedelta = timedelta(minutes=2),
    retry_in: timedelta = timedelta(seconds=30),
    retry: Retry | None = None,
    on_sent: Callable[[OutboxItem], None] | None = None,
    on_failed: Callable[[OutboxItem], None] | None = None,
    on_dead: Callable[[OutboxItem], None] | None = None,
    speed: float = 1.0,
) -> int:
    """Send every row that is due once to ``sink``; return how many were sent.

    ``retry`` (default: ``Retry(first=retry_in)``) decides the backoff and when a row dies;
    ``speed`` scales a Retry-After (real seconds) into the caller's clock.
    """
    policy = retry if retry is not None else Retry(first=retry_in)
    sent = 0
    for item in repo.claim_pending(limit, worker_id, lease, at=at):
        try:
            ref = dispatch(sink, item)
        except Exception as exc:  # the sink is down or refused: keep the row for a later round
            error = f"{type(exc).__name__}: {exc}"
            asked = retry_after(exc)
            if policy.gives_up(item.attempts):
                repo.mark_failed(item.id, error, None, at=at)
                logger.error(
                    "outbox row %s (%s, incident %s) is dead after %d attempts: %s "
                    "(an admin can send it again: Repository.retry_dead)",
                    item.id,
                    item.kind,
                    item.incident_id,
                    item.attempts,
                    error,
                )
                if on_dead is not None:
                    on_dead(item)
            else:
                wait = policy.delay(item.attempts, asked * speed if asked is not None else None)
                logger.warning(
                    "sending outbox row %s (%s) failed (attempt %d): %s; retrying in %.0f s",
                    item.id,
                    item.kind,
                    item.attempts,
                    error,
                    wait.total_seconds(),
                    exc_info=not _expected(exc),
                )
                repo.mark_failed(item.id, error, at + wait, at=at)
            if on_failed is not None:
                on_failed(item)
            continue
        repo.mark_sent(item.id, at=at, message_ref=ref, worker_id=worker_id)
        sent += 1
        if on_sent is not None:
            on_sent(item)
    return sent


def _expected(exc: BaseException) -> bool:
    """Return True for an outage answer (429, 5xx, connection): no traceback in the log."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)
