"""The one delivery loop over the outbox: claim, send, confirm or schedule a retry.

Any ``bot.sinks.Sink`` fits (Slack, the terminal, several at once with ``FanOut``): each claimed
row is handed to ``bot.sinks.dispatch``, which calls the sink's method for the row's kind and
returns the message it created (or None). While the sink fails the row is marked failed with a
retry time that doubles per attempt (``Retry.delay``: at least what a 429's Retry-After asked
for) and claimed again on a later round (a row of a kind this release does not know is retried
too: a newer replica may send it). After ``Retry.max_attempts`` the row becomes a dead letter:
logged once as an error, counted by ``on_dead``, never claimed again until an admin revives it
(``Repository.retry_dead``).

Outages: after a pass that failed and delivered nothing, and until the next delivery, the
destination counts as down. While it is and no row is due, one waiting row is tried ahead of
time every ``Retry.probe`` (or later, if the destination asked so with Retry-After); a probe
that meets the outage again (429, 5xx, no connection) is not counted. The first delivery after
an outage, by a probe or any row, makes every row that waited through it due at once
(``Repository.rearm_failed``), so the end of an outage shows within about one probe interval,
not one backoff, and the attempts of rows created during the outage are forgiven. A row that
fails while the destination delivers others keeps counting and dies.

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
    a row dies after ``max_attempts`` attempts (None: never). While the destination is down and
    no row is due, one is tried ahead of time (not counted) every ``probe`` (None: never)."""

    first: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(minutes=15)
    max_attempts: int | None = 8
    probe: timedelta | None = timedelta(seconds=10)

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
    items = repo.claim_pending(limit, worker_id, lease, at=at)
    probing = False
    if not items and policy.probe is not None:
        probe = repo.claim_probe(worker_id, lease, at=at, every=policy.probe)
        items, probing = ([probe], True) if probe is not None else ([], False)
    sent, failed, hold = 0, [], policy.probe or timedelta(0)
    for item in items:
        try:
            ref = dispatch(sink, item)
        except Exception as exc:  # the sink is down or refused: keep the row for a later round
            failed.append(item.id)
            asked = retry_after(exc)
            asked = asked * speed if asked is not None else None
            hold = max(hold, asked or hold)
            if probing and _expected(exc):
                _probe_failed(repo, item, exc, asked, at=at)
            else:
                _failed(repo, item, exc, asked, policy, at=at, on_dead=on_dead)
            if on_failed is not None:
                on_failed(item)
            continue
        repo.mark_sent(item.id, at=at, message_ref=ref, worker_id=worker_id)
        sent += 1
        if on_sent is not None:
            on_sent(item)
    if sent:
        rearmed = repo.rearm_failed(at=at, keep=failed)
        if rearmed:
            logger.info(
                "the destination delivers again: %d waiting notification(s) are due now", rearmed
            )
    elif failed and policy.probe is not None:
        repo.defer_probes(at + hold)  # down (or asked to wait): the next probe after ``hold``
    return sent


def _failed(
    repo: Repository,
    item: OutboxItem,
    exc: Exception,
    asked: timedelta | None,
    policy: Retry,
    *,
    at: datetime,
    on_dead: Callable[[OutboxItem], None] | None,
) -> None:
    """Schedule a failed row's retry, or make it a dead letter after its last attempt."""
    error = f"{type(exc).__name__}: {exc}"
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
        return
    wait = policy.delay(item.attempts, asked)
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


def _probe_failed(
    repo: Repository, item: OutboxItem, exc: Exception, asked: timedelta | None, *, at: datetime
) -> None:
    """A probe met an outage answer: the row keeps its own schedule (or later, if the destination
    asked) and its attempts. (A probe the destination refused for the row's own reason counts
    as an attempt like any other: ``_failed``.)"""
    error = f"{type(exc).__name__}: {exc}"
    retry_at = item.retry_at if item.retry_at is not None and item.retry_at > at else at
    if asked is not None:
        retry_at = max(retry_at, at + asked)
    logger.info("probe with outbox row %s (%s): still failing: %s", item.id, item.kind, error)
    repo.mark_failed(item.id, error, retry_at, at=at, refund=True)


def _expected(exc: BaseException) -> bool:
    """Return True for an outage answer (429, 5xx, no connection): no traceback in the log.

    An HTTP answer counts by its status; without one, any OSError (refused, reset, timed out,
    unresolvable: ``urllib``'s URLError and ``requests``' ConnectionError are OSErrors too).
    """
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status == 429 or status >= 500
    return isinstance(exc, OSError)
