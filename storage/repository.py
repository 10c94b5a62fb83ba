"""The state store: every read and write of incidents, silences, scans, scores and the outbox.

Time is always passed in (``at=``); every datetime in and out is aware UTC.

Delivery guarantee (the outbox)
-------------------------------
A notification is written to ``outbox`` in the SAME transaction as the incident change that
caused it (``apply_cycle``, ``record_scan``). A crash before that commit loses both, and the next
cycle decides again (same decision, same idempotency key); a crash after it leaves a pending row
that a notifier sends after restart. So nothing is lost.

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
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Engine, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from analysis.lifecycle import (
    DEFAULT_SCORE_EPSILON,
    Action,
    Decision,
    StoredState,
    decide,
    involves,
    max_severity,
    severity_rank,
    silence_matches,
)
from analysis.types import GpuScore, Incident, format_time
from storage.db import make_engine, session_factory
from storage.db import upgrade as migrate
from storage.models import (
    AcknowledgementRow,
    FeedbackRow,
    IncidentGpuRow,
    IncidentImageRow,
    IncidentRow,
    MessageRefRow,
    ModelVersionRow,
    OutboxRow,
    RuntimeStateRow,
    ScanRunRow,
    ScoreRow,
    SilenceRow,
)

logger = logging.getLogger(__name__)

DataSourceChange = Literal["degraded", "recovered"]
DataSourceState = Literal["ok", "degraded", "unknown"]
Verdict = Literal["false_alarm", "confirmed"]
VERDICTS: tuple[str, ...] = ("false_alarm", "confirmed")
OutboxStatus = Literal["pending", "sent", "dead"]

DATA_SOURCE_KIND = "data_source"
"""Outbox kind of the one-per-transition data source event (payload ``state``: degraded/ok)."""


class IncidentNotFoundError(LookupError):
    """No incident has this id."""


@dataclass(frozen=True)
class MessageRef:
    """Where a message lives in Slack."""

    channel: str
    ts: str
    thread_ts: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form stored on outbox rows."""
        return {"channel": self.channel, "ts": self.ts, "thread_ts": self.thread_ts}


@dataclass(frozen=True)
class IncidentRecord:
    """A stored incident: its lifecycle state and the latest snapshot of the finding."""

    id: int
    dedup_key: str
    status: str
    severity: str
    peak_severity: str
    score: float
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    incident: Incident
    message_refs: tuple[MessageRef, ...] = ()
    last_action: str = ""

    @property
    def message_ref(self) -> MessageRef | None:
        """Return the first Slack message of this incident, if any was recorded."""
        return self.message_refs[0] if self.message_refs else None

    @property
    def is_open(self) -> bool:
        """Return True for open and acknowledged incidents."""
        return self.status != "resolved"


@dataclass(frozen=True)
class SilenceRecord:
    """An active or past silence."""

    id: int
    target: str
    until: datetime
    who: str
    reason: str
    created_at: datetime
    lifted_at: datetime | None = None
    lifted_by: str | None = None


@dataclass(frozen=True)
class FeedbackRecord:
    """A human verdict on an incident."""

    id: int
    incident_id: int
    verdict: str
    who: str
    at: datetime
    note: str = ""


@dataclass(frozen=True)
class OutboxItem:
    """A notification to send. ``attempts`` counts claims (> 1 means a possible re-send)."""

    id: int
    kind: str
    incident_id: int | None
    payload: dict[str, Any]
    idempotency_key: str
    status: str
    created_at: datetime
    attempts: int
    claimed_by: str | None
    claim_expires_at: datetime | None
    retry_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    message_ref: MessageRef | None

    @property
    def is_retry(self) -> bool:
        """Return True when an earlier claim may already have reached Slack: reconcile first."""
        return self.attempts > 1


@dataclass(frozen=True)
class ScanRun:
    """One recorded scan."""

    id: int
    at: datetime
    ok: bool
    error: str | None
    duration_s: float
    gpus_scored: int


@dataclass(frozen=True)
class ModelVersion:
    """A fitted model's record."""

    id: int
    name: str
    fleet_fingerprint: str
    features: tuple[str, ...]
    version: str
    path: str
    fitted_at: datetime
    metrics: dict[str, Any]


@dataclass(frozen=True)
class StoreStatus:
    """What ``/gpu-risk status`` shows: scans, data source health, model, open incidents."""

    last_scan: ScanRun | None
    last_ok_scan: ScanRun | None
    data_source: DataSourceState
    data_source_since: datetime | None
    consecutive_failures: int
    model: ModelVersion | None
    open_incidents: int
    acknowledged_incidents: int
    pending_notifications: int

    def model_age(self, at: datetime) -> timedelta | None:
        """Return how old the newest model is at ``at`` (None when no model was recorded)."""
        return None if self.model is None else at - self.model.fitted_at


class Repository:
    """All reads and writes of the state store; one short transaction per call.

    Build with ``Repository(engine)`` (caller owns the engine) or ``Repository.from_url(url)``
    (migrates to head by default; ``close()`` disposes the engine).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        score_epsilon: float = DEFAULT_SCORE_EPSILON,
        degrade_after: int = 1,
        owns_engine: bool = False,
    ) -> None:
        """Use ``engine``; ``degrade_after`` failed scans in a row mark the source degraded."""
        if degrade_after < 1:
            raise ValueError(f"degrade_after must be >= 1 (got {degrade_after})")
        self.engine = engine
        self.score_epsilon = score_epsilon
        self.degrade_after = degrade_after
        self._sessions = session_factory(engine)
        self._readers = session_factory(engine, read_only=True)
        self._owns_engine = owns_engine

    @classmethod
    def from_url(cls, url: str, *, migrate_schema: bool = True, **kwargs: Any) -> Repository:
        """Open the store at ``url`` (migrated to head unless ``migrate_schema`` is False)."""
        engine = make_engine(url)
        if migrate_schema:
            migrate(engine)
        return cls(engine, owns_engine=True, **kwargs)

    def close(self) -> None:
        """Dispose of the engine when this repository created it."""
        if self._owns_engine:
            self.engine.dispose()

    @property
    def dialect(self) -> str:
        """Return ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    # ------------------------------------------------------------------ lifecycle

    def apply_cycle(
        self,
        at: datetime,
        incidents: Sequence[Incident],
        data_ok: bool,
        *,
        scores: Sequence[GpuScore] | None = None,
        unobserved: Collection[str] = (),
        images: Mapping[str, Mapping[str, bytes]] | None = None,
    ) -> list[Decision]:
        """Decide and persist one cycle in ONE transaction; return a decision per dedup key.

        Every current incident and every stored open incident gets ``analysis.lifecycle.decide``;
        the result is written with its outbox row (``notify``) in the same transaction.
        ``data_ok=False`` never resolves anything; ``unobserved`` names nodes, GPU keys or
        component ids that had no data this cycle (partial outage, a GPU fallen off the bus):
        open incidents involving them are not resolved either. ``scores``, when given, go to
        the score history in the same transaction. ``images`` (dedup key -> name -> PNG) are
        stored with a ``post`` decision in the same transaction, so an alert and its pictures
        are committed together. Duplicate dedup keys keep the worst.
        """
        _aware(at, "at")
        current = _worst_per_key(incidents)
        decisions: list[Decision] = []
        with self._sessions.begin() as s:
            silences = [r.target for r in s.scalars(_active_silences_query(at))]
            open_rows = {
                row.dedup_key: row
                for row in s.scalars(select(IncidentRow).where(IncidentRow.open_key.is_not(None)))
            }
            for key, inc in current.items():
                row = open_rows.get(key)
                silenced = any(silence_matches(inc, t) for t in silences)
                d = decide(
                    inc,
                    _stored_state(row) if row else None,
                    data_ok=data_ok,
                    silenced=silenced,
                    score_epsilon=self.score_epsilon,
                )
                decisions.append(self._persist(s, at, d, row, inc))
                pictures = (images or {}).get(key)
                if pictures and d.action is Action.POST and decisions[-1].incident_id is not None:
                    _put_images(s, decisions[-1].incident_id, pictures, at)
            for key, row in open_rows.items():
                if key in current:
                    continue
                state = _stored_state(row)
                seen = state.incident is None or not any(
                    involves(state.incident, e) for e in unobserved
                )
                d = decide(
                    None,
                    state,
                    data_ok=data_ok and seen,
                    score_epsilon=self.score_epsilon,
                    dedup_key=key,
                )
                decisions.append(self._persist(s, at, d, row, None))
            if scores:
                _insert_scores(s, at, scores)
        return decisions

    def _persist(
        self,
        s: Session,
        at: datetime,
        d: Decision,
        row: IncidentRow | None,
        inc: Incident | None,
    ) -> Decision:
        """Write one decision (incident row + outbox row) into the open transaction."""
        if inc is not None:
            if row is None:
                row = IncidentRow(
                    dedup_key=inc.dedup_key,
                    open_key=inc.dedup_key,
                    kind=inc.root_cause.kind,
                    root_cause_id=inc.root_cause.id,
                    status="open",
                    severity=inc.severity,
                    peak_severity=inc.severity,
                    score=float(inc.score),
                    notify_seq=0,
                    last_action=d.action.value,
                    first_seen=at,
                    last_seen=at,
                    snapshot=inc.as_dict(),
                )
                s.add(row)
            else:
                row.severity = inc.severity
                row.peak_severity = max_severity(row.peak_severity, inc.severity)  # type: ignore[arg-type]
                row.score = float(inc.score)
                row.last_seen = at
                row.snapshot = inc.as_dict()
                row.root_cause_id = inc.root_cause.id
            _set_gpus(row, inc)
        if row is None:  # nothing stored and nothing current: a NOOP with nothing to write
            return d
        if d.action is Action.RESOLVE:
            row.status = "resolved"
            row.open_key = None
            row.resolved_at = at
        if d.action is not Action.NOOP:
            row.last_action = d.action.value
        outbox_id: int | None = None
        if d.notify:
            row.notify_seq += 1
            if d.action is not Action.RESOLVE and inc is not None:
                row.notified_severity = inc.severity
                row.notified_score = float(inc.score)
            s.flush()
            outbox_id = _enqueue(
                s,
                at=at,
                kind=d.action.value,
                incident_id=row.id,
                idempotency_key=f"incident:{row.id}:{row.notify_seq}:{d.action.value}",
                payload={
                    "action": d.action.value,
                    "incident_id": row.id,
                    "dedup_key": row.dedup_key,
                    "status": row.status,
                    "severity": row.severity,
                    "previous_severity": d.previous_severity,
                    "peak_severity": row.peak_severity,
                    "score": row.score,
                    "reason": d.reason,
                    "at": format_time(at),
                    "incident": row.snapshot,
                },
            )
        else:
            s.flush()
        snapshot = d.incident if d.incident is not None else Incident.from_dict(row.snapshot)
        return replace(d, incident=snapshot, incident_id=row.id, outbox_id=outbox_id)

    # ------------------------------------------------------------------ incidents (reads)

    def incident(self, incident_id: int) -> IncidentRecord | None:
        """Return the incident with this id, or None."""
        with self._readers() as s:
            row = s.get(IncidentRow, incident_id)
            return _record(row) if row else None

    def open_by_key(self, dedup_key: str) -> IncidentRecord | None:
        """Return the open (or acknowledged) incident with this dedup key, or None."""
        with self._readers() as s:
            row = s.scalar(select(IncidentRow).where(IncidentRow.open_key == dedup_key))
            return _record(row) if row else None

    def open_incidents(self) -> list[IncidentRecord]:
        """Return open and acknowledged incidents, most severe and riskiest first."""
        with self._readers() as s:
            rows = s.scalars(select(IncidentRow).where(IncidentRow.open_key.is_not(None))).all()
            records = [_record(r) for r in rows]
        return sorted(records, key=lambda r: (-severity_rank(r.severity), -r.score, r.id))

    def incidents(self, *, since: datetime | None = None, limit: int = 100) -> list[IncidentRecord]:
        """Return incidents (any status) last seen at or after ``since``, newest first."""
        with self._readers() as s:
            q = select(IncidentRow).order_by(IncidentRow.last_seen.desc(), IncidentRow.id.desc())
            if since is not None:
                q = q.where(IncidentRow.last_seen >= since)
            return [_record(r) for r in s.scalars(q.limit(limit))]

    def latest_for(self, entity: str, *, limit: int = 5) -> list[IncidentRecord]:
        """Return incidents about a node, ``node/gpu``, component id or dedup key.

        Matches the root cause id, the dedup key, an affected GPU's key or an affected GPU's
        node. Open incidents first, then the most recently seen.
        """
        entity = entity.strip()
        with self._readers() as s:
            gpu_match = exists().where(
                IncidentGpuRow.incident_id == IncidentRow.id,
                or_(IncidentGpuRow.gpu_key == entity, IncidentGpuRow.node == entity),
            )
            q = (
                select(IncidentRow)
                .where(
                    or_(
                        IncidentRow.root_cause_id == entity,
                        IncidentRow.dedup_key == entity,
                        gpu_match,
                    )
                )
                .order_by(
                    IncidentRow.open_key.is_(None),  # open first (False < True)
                    IncidentRow.last_seen.desc(),
                    IncidentRow.id.desc(),
                )
                .limit(limit)
            )
            return [_record(r) for r in s.scalars(q)]

    # ------------------------------------------------------------------ human actions

    def acknowledge(self, incident_id: int, user: str, at: datetime) -> IncidentRecord:
        """Record an acknowledgement; an open incident becomes acknowledged (no more pages
        unless severity rises). Acknowledging again or after resolution only adds history.
        Raise IncidentNotFoundError for an unknown id."""
        _aware(at, "at")
        with self._sessions.begin() as s:
            row = s.get(IncidentRow, incident_id)
            if row is None:
                raise IncidentNotFoundError(f"no incident with id {incident_id}")
            s.add(AcknowledgementRow(incident_id=incident_id, user=user, at=at))
            if row.status == "open":
                row.status = "acknowledged"
                row.acknowledged_at = at
                row.acknowledged_by = user
            s.flush()
            return _record(row)

    def acknowledgements(self, incident_id: int) -> list[tuple[str, datetime]]:
        """Return (user, at) of every acknowledgement of an incident, oldest first."""
        with self._readers() as s:
            rows = s.execute(
                select(AcknowledgementRow.user, AcknowledgementRow.at)
                .where(AcknowledgementRow.incident_id == incident_id)
                .order_by(AcknowledgementRow.id)
            ).all()
            return [(u, a) for u, a in rows]

    def record_feedback(
        self, incident_id: int, verdict: str, who: str, at: datetime, note: str = ""
    ) -> FeedbackRecord:
        """Store a verdict (``false_alarm`` or ``confirmed``) on an incident."""
        _aware(at, "at")
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}: expected false_alarm or confirmed")
        with self._sessions.begin() as s:
            if s.get(IncidentRow, incident_id) is None:
                raise IncidentNotFoundError(f"no incident with id {incident_id}")
            row = FeedbackRow(incident_id=incident_id, verdict=verdict, who=who, at=at, note=note)
            s.add(row)
            s.flush()
            return _feedback(row)

    def feedback(self, incident_id: int | None = None) -> list[FeedbackRecord]:
        """Return feedback, for one incident or all, oldest first."""
        with self._readers() as s:
            q = select(FeedbackRow).order_by(FeedbackRow.id)
            if incident_id is not None:
                q = q.where(FeedbackRow.incident_id == incident_id)
            return [_feedback(r) for r in s.scalars(q)]

    def silence(
        self, target: str, until: datetime, who: str, reason: str, at: datetime
    ) -> SilenceRecord:
        """Silence a dedup key, GPU key, node or component id until ``until``."""
        _aware(at, "at")
        _aware(until, "until")
        target = target.strip()
        if not target:
            raise ValueError("silence target is empty: give a node, node/gpu or component id")
        if until <= at:
            raise ValueError(f"silence end {format_time(until)} is not after {format_time(at)}")
        with self._sessions.begin() as s:
            row = SilenceRow(
                target=target, until=until, who=who, reason=reason, created_at=at, lifted_at=None
            )
            s.add(row)
            s.flush()
            return _silence(row)

    def unsilence(self, target: str, at: datetime, who: str | None = None) -> int:
        """Lift every active silence on ``target``; return how many were lifted."""
        _aware(at, "at")
        with self._sessions.begin() as s:
            result = s.execute(
                update(SilenceRow)
                .where(
                    SilenceRow.target == target.strip(),
                    SilenceRow.lifted_at.is_(None),
                    SilenceRow.until > at,
                )
                .values(lifted_at=at, lifted_by=who)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def active_silences(self, at: datetime) -> list[SilenceRecord]:
        """Return silences in force at ``at``, ending soonest first."""
        _aware(at, "at")
        with self._readers() as s:
            return [_silence(r) for r in s.scalars(_active_silences_query(at))]

    def is_silenced(self, incident: Incident, at: datetime) -> bool:
        """Return True when an active silence covers the incident (see ``silence_matches``)."""
        return any(silence_matches(incident, r.target) for r in self.active_silences(at))

    def set_message_ref(
        self,
        incident_id: int,
        channel: str,
        ts: str,
        thread_ts: str | None = None,
        *,
        at: datetime,
    ) -> MessageRef:
        """Record (or replace) the Slack message of an incident in ``channel``."""
        _aware(at, "at")
        with self._sessions.begin() as s:
            if s.get(IncidentRow, incident_id) is None:
                raise IncidentNotFoundError(f"no incident with id {incident_id}")
            ref = MessageRef(channel, ts, thread_ts)
            _upsert_message_ref(s, incident_id, ref, at)
            return ref

    def message_ref(self, incident_id: int, channel: str | None = None) -> MessageRef | None:
        """Return the incident's Slack message (in ``channel``, or its first), or None."""
        with self._readers() as s:
            q = select(MessageRefRow).where(MessageRefRow.incident_id == incident_id)
            if channel is not None:
                q = q.where(MessageRefRow.channel == channel)
            row = s.scalar(q.order_by(MessageRefRow.id).limit(1))
            return MessageRef(row.channel, row.ts, row.thread_ts) if row else None

    # ------------------------------------------------------------------ images

    def save_images(self, incident_id: int, images: Mapping[str, bytes], *, at: datetime) -> int:
        """Store (or replace, by name) an incident's PNGs; return how many were written."""
        _aware(at, "at")
        if not images:
            return 0
        with self._sessions.begin() as s:
            if s.get(IncidentRow, incident_id) is None:
                raise IncidentNotFoundError(f"no incident with id {incident_id}")
            _put_images(s, incident_id, images, at)
            return len(images)

    def images(self, incident_id: int) -> dict[str, bytes]:
        """Return an incident's stored PNGs by name (empty when none were rendered)."""
        with self._readers() as s:
            rows = s.execute(
                select(IncidentImageRow.name, IncidentImageRow.png)
                .where(IncidentImageRow.incident_id == incident_id)
                .order_by(IncidentImageRow.name)
            ).all()
            return {str(name): bytes(png) for name, png in rows}

    # ------------------------------------------------------------------ outbox

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
        _aware(at, "at")
        with self._sessions.begin() as s:
            return _enqueue(
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
        _aware(at, "at")
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
        if self.dialect == "postgresql":
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
            by_id = {r.id: _outbox(r) for r in rows}
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
        _aware(at, "at")
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
                    or not _has_message_ref(s, row.incident_id, message_ref.channel)
                ):
                    # A post's message becomes the incident's; so does a fresh message sent
                    # for an update whose original post never made it.
                    _upsert_message_ref(s, row.incident_id, message_ref, at)
            return True

    def mark_failed(
        self, outbox_id: int, error: str, retry_at: datetime | None, *, at: datetime
    ) -> None:
        """Record a failed send: retry at ``retry_at``, or give up (status dead) when None."""
        _aware(at, "at")
        if retry_at is not None:
            _aware(retry_at, "retry_at")
        with self._sessions.begin() as s:
            row = s.get(OutboxRow, outbox_id)
            if row is None:
                raise LookupError(f"no outbox row with id {outbox_id}")
            if row.status == "sent":
                logger.warning("outbox row %s failed after it was marked sent", outbox_id)
                return
            row.last_error = error[:4000]
            row.claim_expires_at = None
            row.claimed_by = None
            row.retry_at = retry_at
            if retry_at is None:
                row.status = "dead"

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
            return [_outbox(r) for r in s.scalars(q)]

    # ------------------------------------------------------------------ scans and data source

    def record_scan(
        self,
        at: datetime,
        ok: bool,
        duration_s: float,
        gpus_scored: int,
        error: str | None = None,
        *,
        notify: bool = True,
    ) -> DataSourceChange | None:
        """Record a scan; return ``degraded``/``recovered`` when the data source state changed.

        The source turns degraded after ``degrade_after`` failed scans in a row and recovers on
        the first good one. On a change, and when ``notify``, ONE outbox row of kind
        ``data_source`` (payload ``state``, ``since``, ``error``) is committed with the scan.
        """
        _aware(at, "at")
        with self._sessions.begin() as s:
            scan = ScanRunRow(
                at=at, ok=ok, error=error, duration_s=float(duration_s), gpus_scored=gpus_scored
            )
            s.add(scan)
            state = s.get(RuntimeStateRow, DATA_SOURCE_KIND)
            change: DataSourceChange | None = None
            if state is None:
                state = RuntimeStateRow(name=DATA_SOURCE_KIND, value="ok", since=at, counter=0)
                s.add(state)
            if ok:
                state.counter = 0
                if state.value == "degraded":
                    state.value, state.since, change = "ok", at, "recovered"
            else:
                state.counter += 1
                if state.value != "degraded" and state.counter >= self.degrade_after:
                    state.value, state.since, change = "degraded", at, "degraded"
            s.flush()
            if change is not None and notify:
                _enqueue(
                    s,
                    at=at,
                    kind=DATA_SOURCE_KIND,
                    incident_id=None,
                    idempotency_key=f"{DATA_SOURCE_KIND}:{change}:{scan.id}",
                    payload={
                        "state": state.value,
                        "change": change,
                        "since": format_time(at),
                        "error": error,
                        "consecutive_failures": state.counter,
                    },
                )
            return change

    def scans(self, limit: int = 20) -> list[ScanRun]:
        """Return the most recent scans, newest first."""
        with self._readers() as s:
            q = select(ScanRunRow).order_by(ScanRunRow.at.desc(), ScanRunRow.id.desc())
            return [_scan(r) for r in s.scalars(q.limit(limit))]

    def status(self) -> StoreStatus:
        """Return last scan, last good scan, data source state, newest model, open counts."""
        with self._readers() as s:
            newest = select(ScanRunRow).order_by(ScanRunRow.at.desc(), ScanRunRow.id.desc())
            last = s.scalar(newest.limit(1))
            last_ok = s.scalar(newest.where(ScanRunRow.ok.is_(True)).limit(1))
            state = s.get(RuntimeStateRow, DATA_SOURCE_KIND)
            model = s.scalar(
                select(ModelVersionRow)
                .order_by(ModelVersionRow.fitted_at.desc(), ModelVersionRow.id.desc())
                .limit(1)
            )
            counts = dict(
                s.execute(
                    select(IncidentRow.status, func.count())
                    .where(IncidentRow.open_key.is_not(None))
                    .group_by(IncidentRow.status)
                ).all()
            )
            pending = s.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "pending")
            )
            source: DataSourceState = "unknown"
            if state is not None:
                source = "degraded" if state.value == "degraded" else "ok"
            return StoreStatus(
                last_scan=_scan(last) if last else None,
                last_ok_scan=_scan(last_ok) if last_ok else None,
                data_source=source,
                data_source_since=state.since if state else None,
                consecutive_failures=state.counter if state else 0,
                model=_model(model) if model else None,
                open_incidents=int(counts.get("open", 0)) + int(counts.get("acknowledged", 0)),
                acknowledged_incidents=int(counts.get("acknowledged", 0)),
                pending_notifications=int(pending or 0),
            )

    # ------------------------------------------------------------------ scores

    def record_scores(self, at: datetime, scores: Iterable[GpuScore]) -> int:
        """Append one cycle's GPU scores to the history; return how many rows were written."""
        _aware(at, "at")
        with self._sessions.begin() as s:
            return _insert_scores(s, at, scores)

    def prune_scores(self, older_than: datetime) -> int:
        """Delete score history before ``older_than`` (the retention cut); return rows deleted."""
        _aware(older_than, "older_than")
        with self._sessions.begin() as s:
            result = s.execute(delete(ScoreRow).where(ScoreRow.at < older_than))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def top_gpus(self, limit: int = 10) -> list[GpuScore]:
        """Return the riskiest GPUs of the most recent scored cycle, riskiest first."""
        with self._readers() as s:
            latest = s.scalar(select(func.max(ScoreRow.at)))
            if latest is None:
                return []
            rows = s.execute(
                select(ScoreRow.gpu_key, ScoreRow.score)
                .where(ScoreRow.at == latest)
                .order_by(ScoreRow.score.desc(), ScoreRow.gpu_key)
                .limit(limit)
            ).all()
        out = []
        for key, score in rows:
            node, _, gpu = str(key).rpartition("/")
            out.append(GpuScore(node=node, gpu=gpu, score=float(score)))
        return out

    def score_history(
        self, gpu_key: str, *, since: datetime | None = None
    ) -> list[tuple[datetime, float]]:
        """Return (at, score) of one GPU, oldest first."""
        with self._readers() as s:
            q = select(ScoreRow.at, ScoreRow.score).where(ScoreRow.gpu_key == gpu_key)
            if since is not None:
                q = q.where(ScoreRow.at >= since)
            return [(a, float(v)) for a, v in s.execute(q.order_by(ScoreRow.at)).all()]

    # ------------------------------------------------------------------ models

    def record_model(
        self,
        *,
        name: str,
        fleet_fingerprint: str,
        features: Sequence[str],
        version: str,
        path: str,
        fitted_at: datetime,
        metrics: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Record a fitted model (its file lives at ``path``; this is the index of them)."""
        _aware(fitted_at, "fitted_at")
        with self._sessions.begin() as s:
            row = ModelVersionRow(
                name=name,
                fleet_fingerprint=fleet_fingerprint,
                features=list(features),
                version=version,
                path=path,
                fitted_at=fitted_at,
                metrics=dict(metrics or {}),
            )
            s.add(row)
            s.flush()
            return _model(row)

    def latest_model(
        self, *, name: str | None = None, fleet_fingerprint: str | None = None
    ) -> ModelVersion | None:
        """Return the newest model (optionally of a name and for a fleet), or None."""
        with self._readers() as s:
            q = select(ModelVersionRow)
            if name is not None:
                q = q.where(ModelVersionRow.name == name)
            if fleet_fingerprint is not None:
                q = q.where(ModelVersionRow.fleet_fingerprint == fleet_fingerprint)
            row = s.scalar(
                q.order_by(ModelVersionRow.fitted_at.desc(), ModelVersionRow.id.desc()).limit(1)
            )
            return _model(row) if row else None


# ---------------------------------------------------------------------- helpers


def _aware(value: datetime, name: str) -> None:
    """Refuse naive datetimes with a message that says what to pass."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware UTC datetime (got naive {value!r})")


def _worst_per_key(incidents: Sequence[Incident]) -> dict[str, Incident]:
    """Keep one incident per dedup key: the most severe, then the riskiest."""
    out: dict[str, Incident] = {}
    for inc in incidents:
        prev = out.get(inc.dedup_key)
        if prev is None or (severity_rank(inc.severity), inc.score) > (
            severity_rank(prev.severity),
            prev.score,
        ):
            if prev is not None:
                logger.warning("two incidents share dedup key %s: keeping the worse", inc.dedup_key)
            out[inc.dedup_key] = inc
    return out


def _stored_state(row: IncidentRow) -> StoredState:
    """Return the lifecycle's view of a stored row."""
    return StoredState(
        status=row.status,  # type: ignore[arg-type]
        severity=row.severity,  # type: ignore[arg-type]
        score=row.score,
        notified_severity=row.notified_severity,  # type: ignore[arg-type]
        notified_score=row.notified_score,
        incident=Incident.from_dict(row.snapshot),
    )


def _set_gpus(row: IncidentRow, inc: Incident) -> None:
    """Replace the row's affected GPUs with the incident's."""
    wanted = {g.key: g for g in inc.gpus}
    for existing in list(row.gpus):
        if existing.gpu_key not in wanted:
            row.gpus.remove(existing)
    have = {g.gpu_key: g for g in row.gpus}
    for key, g in wanted.items():
        if key in have:
            have[key].score = float(g.score)
        else:
            row.gpus.append(IncidentGpuRow(gpu_key=key, node=g.node, score=float(g.score)))


def _active_silences_query(at: datetime) -> Any:
    """Return the query of silences in force at ``at``."""
    return (
        select(SilenceRow)
        .where(SilenceRow.lifted_at.is_(None), SilenceRow.until > at)
        .order_by(SilenceRow.until, SilenceRow.id)
    )


def _insert(s: Session) -> Any:
    """Return the dialect's INSERT (for ON CONFLICT DO NOTHING)."""
    return postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert


def _enqueue(
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
        _insert(s)(OutboxRow)
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


def _upsert_message_ref(s: Session, incident_id: int, ref: MessageRef, at: datetime) -> None:
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


def _has_message_ref(s: Session, incident_id: int, channel: str) -> bool:
    """Return True when the incident already has a message in ``channel``."""
    q = select(MessageRefRow.id).where(
        MessageRefRow.incident_id == incident_id, MessageRefRow.channel == channel
    )
    return s.scalar(q.limit(1)) is not None


def _put_images(s: Session, incident_id: int, images: Mapping[str, bytes], at: datetime) -> None:
    """Store (or replace by name) an incident's PNGs in the open transaction."""
    s.execute(
        delete(IncidentImageRow).where(
            IncidentImageRow.incident_id == incident_id,
            IncidentImageRow.name.in_(list(images)),
        )
    )
    s.add_all(
        IncidentImageRow(incident_id=incident_id, name=name, png=bytes(png), created_at=at)
        for name, png in images.items()
    )
    s.flush()


def _insert_scores(s: Session, at: datetime, scores: Iterable[GpuScore]) -> int:
    """Bulk-insert one cycle's scores."""
    rows = [{"at": at, "gpu_key": g.key, "score": float(g.score)} for g in scores]
    if rows:
        s.execute(insert(ScoreRow), rows)
    return len(rows)


def _record(row: IncidentRow) -> IncidentRecord:
    """Return the public record of an incident row."""
    return IncidentRecord(
        id=row.id,
        dedup_key=row.dedup_key,
        status=row.status,
        severity=row.severity,
        peak_severity=row.peak_severity,
        score=row.score,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        resolved_at=row.resolved_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        incident=Incident.from_dict(row.snapshot),
        message_refs=tuple(
            MessageRef(m.channel, m.ts, m.thread_ts)
            for m in sorted(row.message_refs, key=lambda m: m.id)
        ),
        last_action=row.last_action,
    )


def _silence(row: SilenceRow) -> SilenceRecord:
    """Return the public record of a silence row."""
    return SilenceRecord(
        id=row.id,
        target=row.target,
        until=row.until,
        who=row.who,
        reason=row.reason,
        created_at=row.created_at,
        lifted_at=row.lifted_at,
        lifted_by=row.lifted_by,
    )


def _feedback(row: FeedbackRow) -> FeedbackRecord:
    """Return the public record of a feedback row."""
    return FeedbackRecord(row.id, row.incident_id, row.verdict, row.who, row.at, row.note)


def _outbox(row: OutboxRow) -> OutboxItem:
    """Return the public record of an outbox row."""
    ref = row.message_ref
    return OutboxItem(
        id=row.id,
        kind=row.kind,
        incident_id=row.incident_id,
        payload=dict(row.payload),
        idempotency_key=row.idempotency_key,
        status=row.status,
        created_at=row.created_at,
        attempts=row.attempts,
        claimed_by=row.claimed_by,
        claim_expires_at=row.claim_expires_at,
        retry_at=row.retry_at,
        last_error=row.last_error,
        sent_at=row.sent_at,
        message_ref=MessageRef(ref["channel"], ref["ts"], ref.get("thread_ts")) if ref else None,
    )


def _scan(row: ScanRunRow) -> ScanRun:
    """Return the public record of a scan row."""
    return ScanRun(row.id, row.at, row.ok, row.error, row.duration_s, row.gpus_scored)


def _model(row: ModelVersionRow) -> ModelVersion:
    """Return the public record of a model row."""
    return ModelVersion(
        id=row.id,
        name=row.name,
        fleet_fingerprint=row.fleet_fingerprint,
        features=tuple(row.features),
        version=row.version,
        path=row.path,
        fitted_at=row.fitted_at,
        metrics=dict(row.metrics),
    )
