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

from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased, sessionmaker

from analysis.lifecycle import Action
from storage.models import MessageRefRow, OutboxRow
from storage.records import MessageRef, OutboxItem, outbox_item, require_aware

logger = logging.getLogger(__name__)


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
        earlier = aliased(OutboxRow)
        blocked = exists().where(
            earlier.incident_id == OutboxRow.incident_id,
            earlier.id < OutboxRow.id,
            earlier.status == "pending",
        )
        claimable = and_(
            OutboxRow.status == "pending",
            or_(OutboxRow.claim_expires_at.is_(None), OutboxRow.claim_expires_at <= at),
            or_(OutboxRow.retry_at.is_(None), OutboxRow.retry_at <= at),
        )
        q = select(OutboxRow.id).where(claimable, ~blocked).order_by(OutboxRow.id).limit(limit)
        if self.engine.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True, of=OutboxRow)
        claimed: list[int] = []
        with self._sessions.begin() as s:
            for oid in s.scalars(q).all():
                result = s.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id == oid, claimable)
                    .values(
                        claimed_by=worker_id,
                        claim_expires_at=at + lease,
                        attempts=OutboxRow.attempts + 1,
                    )
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(oid)
            rows = s.scalars(select(OutboxRow).where(OutboxRow.id.in_(claimed))).all()
            by_id = {r.id: outbox_item(r) for r in rows}
        return [by_id[i] for i in claimed]

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
        self, outbox_id: int, error: str, retry_at: datetime | None, *, at: datetime
    ) -> bool:
        """Record a failed send: retry at ``retry_at``, or give up (status dead) when None.

        Return True when the row is now dead (a dead letter: ``retry_dead`` sends it back).
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
            if retry_at is None:
                row.status = "dead"
                row.dead_at = at
            return retry_at is None

    def retry_dead(self, *, at: datetime, ids: Collection[int] | None = None) -> int:
        """Send dead letters (all, or those in ``ids``) back to pending with fresh attempts.

        Return how many rows were revived; they are claimable at once (``retry_at`` = ``at``).
        """
        require_aware(at, "at")
        q = update(OutboxRow).where(OutboxRow.status == "dead")
        if ids is not None:
            q = q.where(OutboxRow.id.in_(list(ids)))
        with self._sessions.begin() as s:
            result = s.execute(
                q.values(
                    status="pending",
                    attempts=0,
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
