"""The outbox: notifications committed with the change that caused them, then leased and sent.

Delivery guarantee
------------------
A notification is written to ``outbox`` in the SAME transaction as the incident change that
caused it (``apply_cycle``, ``record_scan``: they call ``enqueue_row`` on their open session).
A crash before that commit loses both, and the next cycle decides again (same decision, same
idempotency key); a crash after it leaves a pending row that a notifier sends after restart. So
nothing is lost.

Dead letters: the delivery loop gives a row a bounded number of attempts (with exponential
backoff); after the last one ``mark_failed(retry_at=None)`` makes it ``dead`` (``dead_at``). A dead
row is never claimed again until an admin calls ``retry_dead``; ``StoreStatus`` counts them.

Outages: a delivery pass that failed and delivered nothing calls ``defer_probes``, which marks
the destination as failing (a ``runtime_state`` row shared by replicas). While it is marked, rows
wait on their backoff and ``claim_probe`` hands one of them out ahead of time, at most once per
probe interval; a probe that meets the outage again is given back with
``mark_failed(refund=True)``, so probing never brings a row nearer to dead. The next delivery
calls ``rearm_failed``: the mark goes, the rows that waited through the outage are due at once,
and the attempts of those created after the destination's previous delivery are forgiven (they
never had a working destination). A row that kept failing while deliveries went through keeps
its count, so it still ends dead.

Sending: a notifier calls ``claim_pending`` (which leases rows to one worker: ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, a conditional UPDATE on SQLite), sends each row, then ``mark_sent`` with
the Slack message reference (stored in ``message_refs`` for posts in the same transaction) or
``mark_failed`` with a retry time. Rows of one incident are handed out strictly in order, one at
a time (an update never overtakes its post). A row claimed but never confirmed is handed out
again only after its lease expires, with ``attempts`` > 1.

What remains (at-least-once at the very edge): if the process dies after Slack accepted a message
and before ``mark_sent`` committed, the row is sent again after the lease. The notifier narrows
this window: for ``update``/``improve``/``resolve`` it edits the message found via
``message_ref`` (``chat.update`` is idempotent: the same edit twice shows once) and should make
its thread reply reconcilable; for ``post`` with ``OutboxItem.attempts > 1`` it should first look
for its previous attempt (e.g. Slack message ``metadata`` carrying ``idempotency_key``, found via
``conversations.history``) and adopt that ts instead of posting again. Without such a lookup a
crash inside that window (milliseconds) can produce one duplicate Slack message; no other crash
point can.

Where a sent message landed (``message_refs``) is written here too, by ``upsert_message_ref``:
``mark_sent`` records it for posts, and ``IncidentStore.set_message_ref`` for direct sends.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased, sessionmaker

from analysis.lifecycle import Action
from storage.models import MessageRefRow, OutboxRow, RuntimeStateRow
from storage.records import MessageRef, OutboxItem, outbox_item, require_aware

logger = logging.getLogger(__name__)

PROBE_STATE = "outbox_probe"
"""``runtime_state`` row present while the destination fails; ``since``: the next probe's time."""


class OutboxStore:
    """Enqueue, lease, confirm and list notifications; one short transaction per call.

    A mixin of ``storage.repository.Repository``, which provides the attributes below.
    """

    engine: Engine
    _sessions: sessionmaker[Session]
    _readers: sessionmaker[Session]

    def enqueue(
        self,
        kind: str,
        incident_id: int | None,
        payload: dict[str, Any],
        idempotency_key: str,
        *,
        at: datetime,
    ) -> int | None:
        """Add a notification in its own transaction; None when the key was already enqueued."""
        require_aware(at, "at")
        with self._sessions.begin() as s:
            return enqueue_row(
                s,
                at=at,
                kind=kind,
                incident_id=incident_id,
                payload=payload,
                idempotency_key=idempotency_key,
            )

    def claim_pending(
        self, limit: int, worker_id: str, lease: timedelta, *, at: datetime
    ) -> list[OutboxItem]:
        """Lease up to ``limit`` sendable rows to ``worker_id`` until ``at + lease``.

        Sendable: pending, not claimed (or claim expired), ``retry_at`` reached, and no earlier
        pending row of the same incident. Two workers never get the same row while its lease
        runs (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED; both: a conditional UPDATE).
        """
        require_aware(at, "at")
        if limit < 1:
            return []
        blocked = _blocked()
        claimable = and_(
            OutboxRow.status == "pending",
            or_(OutboxRow.claim_expires_at.is_(None), OutboxRow.claim_expires_at <= at),
            or_(OutboxRow.retry_at.is_(None), OutboxRow.retry_at <= at),
        )
        q = select(OutboxRow.id).where(claimable, ~blocked).order_by(OutboxRow.id).limit(limit)
        claimed: list[int] = []
        with self._sessions.begin() as s:
            for oid in s.scalars(self._skip_locked(q)).all():
                if _lease(s, oid, claimable, worker_id, at + lease):
                    claimed.append(oid)
            rows = s.scalars(select(OutboxRow).where(OutboxRow.id.in_(claimed))).all()
            by_id = {r.id: outbox_item(r) for r in rows}
        return [by_id[i] for i in claimed]

    def _skip_locked(self, q: Any) -> Any:
        """``q`` locking the rows it selects, skipping locked ones (PostgreSQL; SQLite has none)."""
        if self.engine.dialect.name == "postgresql":
            return q.with_for_update(skip_locked=True, of=OutboxRow)
        return q

    def claim_probe(
        self, worker_id: str, lease: timedelta, *, at: datetime, every: timedelta
    ) -> OutboxItem | None:
        """Lease one row that waits on its failure backoff ahead of time, to probe the destination.

        Only while the destination is marked failing (``defer_probes``, until ``rearm_failed``),
        not before the time set there, and then at most once per ``every``: the waiting row whose
        retry is nearest, unless an earlier row of its incident is pending. The claim counts an
        attempt as usual; the caller gives it back if the probe meets the outage again
        (``mark_failed(..., refund=True)``). None when no probe is due.
        """
        require_aware(at, "at")
        waiting = and_(
            OutboxRow.status == "pending",
            OutboxRow.last_error.is_not(None),
            OutboxRow.retry_at > at,
            or_(OutboxRow.claim_expires_at.is_(None), OutboxRow.claim_expires_at <= at),
        )
        q = (
            select(OutboxRow.id)
            .where(waiting, ~_blocked())
            .order_by(OutboxRow.retry_at, OutboxRow.id)
            .limit(1)
        )
        with self._sessions.begin() as s:
            state = s.get(RuntimeStateRow, PROBE_STATE, with_for_update=True)
            if state is None or state.since > at:
                return None  # the destination is not known to fail, or was probed just now
            oid = s.scalar(self._skip_locked(q))
            if oid is None:
                return None
            if not _lease(s, oid, waiting, worker_id, at + lease):
                return None  # another replica took it a moment ago
            _hold_probes(s, at + every)
            return outbox_item(s.scalars(select(OutboxRow).where(OutboxRow.id == oid)).one())

    def defer_probes(self, until: datetime) -> None:
        """Mark the destination failing: probe it from ``until`` on (not earlier than set before).

        The mark stays until the next delivery (``rearm_failed``).
        """
        require_aware(until, "until")
        with self._sessions.begin() as s:
            _hold_probes(s, until)

    def rearm_failed(self, *, at: datetime, keep: Collection[int] = ()) -> int:
        """The destination delivered at ``at``: it is no longer marked failing, and rows waiting
        on a failure become due now.

        Rows created after the destination's previous delivery (before ``at``) never saw it
        working: their attempts are forgiven (set back to 1: still a retry, so the sink
        reconciles with an earlier attempt). Rows that waited while deliveries went through
        failed on their own and are left alone, as are those in ``keep`` (they failed in the
        pass that delivered) and those under a running lease. Return how many rows were re-armed.
        """
        require_aware(at, "at")
        with self._sessions.begin() as s:
            s.execute(delete(RuntimeStateRow).where(RuntimeStateRow.name == PROBE_STATE))
            failing = (OutboxRow.status == "pending", OutboxRow.last_error.is_not(None))
            if s.scalar(select(OutboxRow.id).where(*failing).limit(1)) is None:
                return 0  # nothing waits on a failure (the usual case)
            previous = s.scalar(
                select(func.max(OutboxRow.sent_at)).where(
                    OutboxRow.status == "sent", OutboxRow.sent_at < at
                )
            )
            where = [
                *failing,
                or_(OutboxRow.claim_expires_at.is_(None), OutboxRow.claim_expires_at <= at),
            ]
            if previous is not None:
                where.append(OutboxRow.created_at > previous)
            if keep:
                where.append(OutboxRow.id.not_in(list(keep)))
            result = s.execute(
                update(OutboxRow)
                .where(*where)
                .values(retry_at=at, attempts=_at_most_one_attempt())
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def mark_sent(
        self,
        outbox_id: int,
        *,
        at: datetime,
        message_ref: MessageRef | None = None,
        worker_id: str | None = None,
    ) -> bool:
        """Confirm a send; store ``message_ref`` (for a post: as the incident's message too).

        Return False when the row was already sent (nothing changes).
        """
        require_aware(at, "at")
        with self._sessions.begin() as s:
            row = s.get(OutboxRow, outbox_id)
            if row is None:
                raise LookupError(f"no outbox row with id {outbox_id}")
            if row.status == "sent":
                logger.warning("outbox row %s was already marked sent", outbox_id)
                return False
            if worker_id is not None and row.claimed_by not in (None, worker_id):
                logger.warning(
                    "outbox row %s confirmed by %s but claimed by %s (lease expired?)",
                    outbox_id,
                    worker_id,
                    row.claimed_by,
                )
            row.status = "sent"
            row.sent_at = at
            row.claim_expires_at = None
            row.last_error = None
            if message_ref is not None:
                row.message_ref = message_ref.as_dict()
                if row.incident_id is not None and (
                    row.kind == Action.POST.value
                    or not has_message_ref(s, row.incident_id, message_ref.channel)
                ):
                    # A post's message becomes the incident's; so does a fresh message sent
                    # for an update whose original post never made it.
                    upsert_message_ref(s, row.incident_id, message_ref, at)
            return True

    def mark_failed(
        self,
        outbox_id: int,
        error: str,
        retry_at: datetime | None,
        *,
        at: datetime,
        refund: bool = False,
    ) -> bool:
        """Record a failed send: retry at ``retry_at``, or give up (status dead) when None.

        ``refund``: the attempt does not count (a failed probe); the row keeps at least one
        attempt, so its next send still reconciles. Return True when the row is now dead (a
        dead letter: ``retry_dead`` sends it back).
        """
        require_aware(at, "at")
        if retry_at is not None:
            require_aware(retry_at, "retry_at")
        with self._sessions.begin() as s:
            row = s.get(OutboxRow, outbox_id)
            if row is None:
                raise LookupError(f"no outbox row with id {outbox_id}")
            if row.status == "sent":
                logger.warning("outbox row %s failed after it was marked sent", outbox_id)
                return False
            row.last_error = error[:4000]
            row.claim_expires_at = None
            row.claimed_by = None
            row.retry_at = retry_at
            if refund:
                row.attempts = max(1, row.attempts - 1)
            if retry_at is None:
                row.status = "dead"
                row.dead_at = at
            return retry_at is None

    def retry_dead(self, *, at: datetime, ids: Collection[int] | None = None) -> int:
        """Send dead letters (all, or those in ``ids``) back to pending with fresh attempts.

        Return how many rows were revived; they are claimable at once (``retry_at`` = ``at``).
        A revived row that was tried keeps one attempt, so its next send still reconciles with
        an earlier one that may have got through (a post looks for it before posting again).
        """
        require_aware(at, "at")
        q = update(OutboxRow).where(OutboxRow.status == "dead")
        if ids is not None:
            q = q.where(OutboxRow.id.in_(list(ids)))
        with self._sessions.begin() as s:
            result = s.execute(
                q.values(
                    status="pending",
                    attempts=_at_most_one_attempt(),
                    retry_at=at,
                    dead_at=None,
                    claimed_by=None,
                    claim_expires_at=None,
                ).execution_options(synchronize_session=False)
            )
            revived = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if revived:
            logger.info("%d dead notification(s) sent back to the outbox", revived)
        return revived

    def outbox_counts(self) -> dict[str, int]:
        """Return how many outbox rows are pending and dead (zeros included)."""
        with self._readers() as s:
            counts = dict(
                s.execute(
                    select(OutboxRow.status, func.count())
                    .where(OutboxRow.status.in_(("pending", "dead")))
                    .group_by(OutboxRow.status)
                ).all()
            )
        return {"pending": int(counts.get("pending", 0)), "dead": int(counts.get("dead", 0))}

    def outbox(
        self, *, status: str | None = None, incident_id: int | None = None
    ) -> list[OutboxItem]:
        """Return outbox rows (optionally by status or incident), oldest first."""
        with self._readers() as s:
            q = select(OutboxRow).order_by(OutboxRow.id)
            if status is not None:
                q = q.where(OutboxRow.status == status)
            if incident_id is not None:
                q = q.where(OutboxRow.incident_id == incident_id)
            return [outbox_item(r) for r in s.scalars(q)]


# ---------------------------------------------------------------------- in an open transaction


def _blocked() -> Any:
    """SQL: an earlier row of the same incident is still pending (rows go out in order)."""
    earlier = aliased(OutboxRow)
    return exists().where(
        earlier.incident_id == OutboxRow.incident_id,
        earlier.id < OutboxRow.id,
        earlier.status == "pending",
    )


def _at_most_one_attempt() -> Any:
    """SQL: the row's attempts, at most 1 (forgiven, yet still known to have been tried)."""
    return case((OutboxRow.attempts > 1, 1), else_=OutboxRow.attempts)


def _hold_probes(s: Session, until: datetime) -> None:
    """Move the earliest next probe to ``until`` (never earlier than already set)."""
    state = s.get(RuntimeStateRow, PROBE_STATE, with_for_update=True)
    if state is None:
        s.execute(
            dialect_insert(s)(RuntimeStateRow)
            .values(name=PROBE_STATE, value="next probe", since=until, counter=0)
            .on_conflict_do_nothing(index_elements=["name"])
        )
    elif state.since < until:
        state.since = until


def _lease(s: Session, oid: int, condition: Any, worker_id: str, until: datetime) -> bool:
    """Lease row ``oid`` to ``worker_id`` until ``until`` if it still meets ``condition``; count
    the attempt. False when another worker took it first (the conditional UPDATE matched none)."""
    result = s.execute(
        update(OutboxRow)
        .where(OutboxRow.id == oid, condition)
        .values(claimed_by=worker_id, claim_expires_at=until, attempts=OutboxRow.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def enqueue_row(
    s: Session,
    *,
    at: datetime,
    kind: str,
    incident_id: int | None,
    payload: dict[str, Any],
    idempotency_key: str,
) -> int | None:
    """Insert an outbox row unless its idempotency key exists; return its id or None."""
    stmt = (
        dialect_insert(s)(OutboxRow)
        .values(
            kind=kind,
            incident_id=incident_id,
            payload=payload,
            idempotency_key=idempotency_key,
            status="pending",
            created_at=at,
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxRow.id)
    )
    oid = s.execute(stmt).scalar()
    if oid is None:
        logger.info("outbox key %s already enqueued: not adding it twice", idempotency_key)
    return oid


def upsert_message_ref(s: Session, incident_id: int, ref: MessageRef, at: datetime) -> None:
    """Insert or replace the incident's message in ``ref.channel``."""
    row = s.scalar(
        select(MessageRefRow).where(
            MessageRefRow.incident_id == incident_id, MessageRefRow.channel == ref.channel
        )
    )
    if row is None:
        s.add(
            MessageRefRow(
                incident_id=incident_id,
                channel=ref.channel,
                ts=ref.ts,
                thread_ts=ref.thread_ts,
                created_at=at,
            )
        )
    else:
        row.ts, row.thread_ts = ref.ts, ref.thread_ts
    s.flush()


def has_message_ref(s: Session, incident_id: int, channel: str) -> bool:
    """Return True when the incident already has a message in ``channel``."""
    q = select(MessageRefRow.id).where(
        MessageRefRow.incident_id == incident_id, MessageRefRow.channel == channel
    )
    return s.scalar(q.limit(1)) is not None


def dialect_insert(s: Session) -> Any:
    """Return the dialect's INSERT (for ON CONFLICT DO NOTHING)."""
    return postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
