"""Delivery through an outage, driven by simulated time (no sleeps, no timing assertions).

While the destination answers 429/5xx, rows back off and one is probed now and then without
counting; the first delivery after the outage makes every row that waited through it due, so
the next pass sends each of them once, and the attempts spent during the outage are forgiven.
A row that keeps failing while others go out (or alone, for good) still ends dead.
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from bot.delivery import Retry, deliver
from bot.sinks import DataSourceNote, Notification
from storage.repository import MessageRef, OutboxItem, Repository
from tests.fixtures.postgres import (  # noqa: F401 - pytest fixtures
    db_url,
    postgres_server,
)

AT = datetime(2026, 11, 22, 10, tzinfo=UTC)
PASS = timedelta(seconds=5)  # between delivery passes (the job runs every 2 s: 5 s is cheaper)
LEASE = timedelta(minutes=2)


@pytest.fixture
def repo(db_url: str) -> Iterator[Repository]:  # noqa: F811
    """A migrated repository on SQLite or PostgreSQL."""
    r = Repository.from_url(db_url)
    yield r
    r.close()


class HttpError(Exception):
    """What an HTTP client raises for an answer it did not like (the answer on ``response``)."""

    def __init__(self, status: int, error: str, retry_after: int | None = None) -> None:
        """Carry ``status`` and, for a 429, the Retry-After header."""
        super().__init__(f"HTTP {status}: {error}")
        headers = {"Retry-After": [str(retry_after)]} if retry_after is not None else {}
        self.response = SimpleNamespace(status_code=status, headers=headers)


@dataclass
class Destination:
    """A sink in front of a destination that can be down, and that may refuse some rows."""

    down: bool = False
    status: int = 503
    retry_after: int | None = None
    refuse: set[str] = field(default_factory=set)
    refuse_status: int = 200  # 200: refused for the row's own reason (e.g. channel_not_found)
    calls: list[tuple[str, int]] = field(default_factory=list)  # (key, attempts) per call
    delivered: list[str] = field(default_factory=list)

    def _send(self, note: Notification | DataSourceNote) -> MessageRef | None:
        """Deliver, or fail as the destination currently does."""
        self.calls.append((note.idempotency_key, note.attempts))
        if note.idempotency_key in self.refuse:
            raise HttpError(self.refuse_status, "channel_not_found")
        if self.down:
            raise HttpError(self.status, "ratelimited", self.retry_after)
        self.delivered.append(note.idempotency_key)
        return None

    def post(self, note: Notification) -> MessageRef | None:
        """Send a post."""
        return self._send(note)

    def update(self, note: Notification) -> MessageRef | None:
        """Send an update."""
        return self._send(note)

    def improve(self, note: Notification) -> MessageRef | None:
        """Send an improvement."""
        return self._send(note)

    def resolve(self, note: Notification) -> MessageRef | None:
        """Send a resolve."""
        return self._send(note)

    def data_source(self, note: DataSourceNote) -> MessageRef | None:
        """Send a data-source change."""
        return self._send(note)

    def post_text(self, text: str) -> None:
        """Not used by the outbox."""


def enqueue(repo: Repository, key: str, at: datetime) -> None:
    """Queue one notification (a data-source note: no incident, no ordering constraint)."""
    payload = {"state": "degraded", "change": "degraded", "since": "2026-11-22T10:00:00Z"}
    assert repo.enqueue("data_source", None, payload, key, at=at) is not None


def rows(repo: Repository) -> dict[str, OutboxItem]:
    """The outbox by idempotency key."""
    return {r.idempotency_key: r for r in repo.outbox()}


def test_after_a_ten_minute_storm_every_waiting_row_goes_out_once_on_the_next_pass(
    repo: Repository,
) -> None:
    dest, policy = Destination(), Retry()  # the defaults: 30 s doubling to 15 min, 8 attempts
    enqueue(repo, "before", AT)
    assert deliver(repo, dest, at=AT, retry=policy) == 1  # the destination worked before
    dest.down = True
    at, end = AT, AT + timedelta(minutes=10)
    while at < end:  # ten minutes of 503s, a pass every 2 s, new rows now and then
        at += PASS
        if (at - AT) % timedelta(seconds=90) == timedelta(0):
            enqueue(repo, f"storm-{len(rows(repo))}", at)
        assert deliver(repo, dest, at=at, retry=policy) == 0
    waiting = [r for r in repo.outbox() if r.status == "pending"]
    assert len(waiting) == 6 and repo.outbox_counts()["dead"] == 0
    assert all(r.attempts >= 2 for r in waiting)  # tried on their backoff through the storm
    # Left to their backoff alone, some would wait minutes past the storm.
    assert max(r.retry_at for r in waiting if r.retry_at) - end > timedelta(minutes=3)
    probes = len(dest.calls) - sum(r.attempts for r in waiting) - 1
    assert policy.probe is not None
    assert 10 < probes <= (end - AT) / policy.probe  # probed while the rows waited, not hammered

    dest.down = False
    first_pass = at + PASS
    while len(dest.delivered) == 1:  # passes until one gets through: a probe
        at += PASS
        deliver(repo, dest, at=at, retry=policy)
    assert at - first_pass <= policy.probe  # the end of the storm shows within one probe interval
    assert len(dest.delivered) == 2
    left = [r for r in repo.outbox() if r.status == "pending"]
    assert len(left) == 5
    assert all(r.retry_at == at and r.attempts == 1 for r in left)  # due now, outage forgiven

    at += PASS
    assert deliver(repo, dest, at=at, retry=policy) == 5  # every one on the very next pass
    assert collections.Counter(dest.delivered) == {k: 1 for k in rows(repo)}
    assert repo.outbox_counts() == {"pending": 0, "dead": 0}
    assert all(n > 1 for key, n in dest.calls[-5:])  # each told it is a retry: it reconciles
    assert deliver(repo, dest, at=at + timedelta(hours=1), retry=policy) == 0  # nothing twice


@pytest.mark.parametrize(
    ("status", "traffic"),
    [(200, True), (503, True), (503, False)],
    ids=["own-error-while-others-go-out", "5xx-only-it-gets", "alone-5xx-for-good"],
)
def test_a_row_that_keeps_failing_still_ends_dead_once(
    repo: Repository, caplog: pytest.LogCaptureFixture, status: int, traffic: bool
) -> None:
    """Probes and re-arming never keep a failing row alive: it dies after its attempts."""
    dest = Destination(refuse={"poison"}, refuse_status=status)
    policy = Retry(max_attempts=4)
    enqueue(repo, "first", AT)
    assert deliver(repo, dest, at=AT, retry=policy) == 1
    dead: list[int] = []
    at = AT + PASS
    enqueue(repo, "poison", at)
    with caplog.at_level(logging.INFO, logger="bot.delivery"):
        for i in range(1000):  # at most ~83 minutes
            if traffic and i % 15 == 0:
                enqueue(repo, f"other-{i}", at)
            deliver(repo, dest, at=at, retry=policy, on_dead=lambda item: dead.append(item.id))
            if dead:
                break
            at += PASS
    poison = rows(repo)["poison"]
    assert poison.status == "dead" and dead == [poison.id] and poison.attempts <= 2 * 4
    assert sum(" is dead after " in r.getMessage() for r in caplog.records) == 1
    tried = sum(key == "poison" for key, _ in dest.calls)
    if status == 503:
        assert tried > poison.attempts  # probed too, and those tries were not counted
    others = [k for k in rows(repo) if k.startswith("other-")]
    assert collections.Counter(dest.delivered) == {k: 1 for k in ["first", *others]}
    assert deliver(repo, dest, at=at + timedelta(days=1), retry=policy) == 0
    assert sum(key == "poison" for key, _ in dest.calls) == tried  # dead: never tried again


def test_probes_wait_as_long_as_a_429_asks(repo: Repository) -> None:
    """Slack answers 429 Retry-After: 120 for 12 minutes: neither the row's own retries nor the
    probes come sooner than that (but they keep coming)."""
    dest = Destination(down=True, status=429, retry_after=120)
    enqueue(repo, "only", AT)
    at, called = AT, []
    while at < AT + timedelta(minutes=12):
        before = len(dest.calls)
        deliver(repo, dest, at=at, retry=Retry())
        called += [at] * (len(dest.calls) - before)
        at += PASS
    gaps = [b - a for a, b in itertools.pairwise(called)]
    assert len(called) >= 5 and min(gaps) >= timedelta(seconds=120)
    (row,) = repo.outbox()
    assert row.status == "pending" and row.attempts < len(called)  # probes were not counted


def test_a_probe_is_handed_out_once_per_interval_nearest_retry_first(
    repo: Repository,
) -> None:
    every = timedelta(seconds=10)
    enqueue(repo, "a", AT)
    enqueue(repo, "b", AT)
    a, b = repo.claim_pending(10, "w", LEASE, at=AT)
    repo.mark_failed(a.id, "HTTP 503", AT + timedelta(minutes=5), at=AT)
    repo.mark_failed(b.id, "HTTP 503", AT + timedelta(minutes=1), at=AT)
    assert repo.claim_pending(10, "w", LEASE, at=AT + PASS) == []  # nothing is due
    assert repo.claim_probe("w", LEASE, at=AT + PASS, every=every) is None  # not known to be down
    repo.defer_probes(AT + PASS)  # a pass failed and delivered nothing: down, probe from now on
    probe = repo.claim_probe("w", LEASE, at=AT + PASS, every=every)
    assert probe is not None and probe.id == b.id and probe.attempts == 2  # nearest retry first
    assert repo.claim_probe("w", LEASE, at=AT + 2 * PASS, every=every) is None  # one per interval
    repo.mark_failed(probe.id, "HTTP 503", probe.retry_at, at=AT + PASS, refund=True)
    (again,) = [r for r in repo.outbox() if r.id == b.id]
    assert again.attempts == 1 and again.retry_at == AT + timedelta(minutes=1)  # not counted
    repo.defer_probes(AT + timedelta(seconds=40))  # e.g. a 429 asked for 40 s
    assert repo.claim_probe("w", LEASE, at=AT + timedelta(seconds=39), every=every) is None
    assert repo.claim_probe("w", LEASE, at=AT + timedelta(seconds=40), every=every) is not None
    repo.mark_failed(b.id, "HTTP 503", AT + timedelta(minutes=1), at=AT, refund=True)
    assert repo.rearm_failed(at=AT + timedelta(seconds=45)) == 2  # a delivery: no longer down
    for item in repo.claim_pending(10, "w", LEASE, at=AT + timedelta(seconds=45)):
        repo.mark_failed(item.id, "invalid_blocks", AT + timedelta(hours=2), at=AT)
    assert repo.claim_probe("w", LEASE, at=AT + timedelta(hours=1), every=every) is None


def test_re_arming_forgives_only_rows_that_never_saw_the_destination_work(
    repo: Repository,
) -> None:
    enqueue(repo, "old", AT)
    (old,) = repo.claim_pending(10, "w", LEASE, at=AT)
    repo.mark_failed(old.id, "channel_not_found", AT + timedelta(hours=1), at=AT)
    enqueue(repo, "ok", AT + PASS)
    (ok,) = repo.claim_pending(10, "w", LEASE, at=AT + PASS)
    assert repo.mark_sent(ok.id, at=AT + PASS)  # delivered after "old" was created
    enqueue(repo, "new", AT + 2 * PASS)
    for n in range(3):  # an outage: "new" fails three times
        failed_at = AT + (2 + n) * PASS
        (new,) = repo.claim_pending(10, "w", LEASE, at=failed_at)
        retry_at = failed_at + PASS if n < 2 else AT + timedelta(hours=1)
        repo.mark_failed(new.id, "HTTP 503", retry_at, at=failed_at)
    recovered = AT + timedelta(minutes=5)
    assert repo.rearm_failed(at=recovered) == 1
    by_key = rows(repo)
    assert (by_key["new"].attempts, by_key["new"].retry_at) == (1, recovered)
    assert (by_key["old"].attempts, by_key["old"].retry_at) == (1, AT + timedelta(hours=1))
    (due,) = repo.claim_pending(10, "w", LEASE, at=recovered)
    assert due.id == by_key["new"].id and due.is_retry  # forgiven, still reconciled


def test_a_revived_dead_letter_still_reconciles_with_its_earlier_attempts(
    repo: Repository,
) -> None:
    enqueue(repo, "k", AT)
    for n in range(3):
        (item,) = repo.claim_pending(10, "w", LEASE, at=AT + n * LEASE)
        repo.mark_failed(item.id, "HTTP 504 (maybe delivered)", None if n == 2 else AT, at=AT)
    assert repo.retry_dead(at=AT + timedelta(days=1)) == 1
    (again,) = repo.claim_pending(10, "w", LEASE, at=AT + timedelta(days=1))
    assert again.attempts == 2 and again.is_retry
