"""Incidents and what hangs off them: cycle persistence, reads, acks, feedback, silences, images.

``apply_cycle`` persists what ``analysis.lifecycle.decide_cycle`` decided: it reads the open
incidents and active silences, asks the pure decision, and writes every decision (incident row,
outbox row, images) and the cycle's scores in ONE transaction. Nothing is decided here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from analysis.lifecycle import (
    RECURRENCE_WINDOW,
    Action,
    Decision,
    StoredState,
    decide_cycle,
    max_severity,
    severity_rank,
    silence_matches,
)
from analysis.types import GpuScore, Incident, format_time
from storage.models import (
    AcknowledgementRow,
    FeedbackRow,
    IncidentGpuRow,
    IncidentImageRow,
    IncidentRow,
    MessageRefRow,
    SilenceRow,
    TrackerStateRow,
)
from storage.outbox import enqueue_row, upsert_message_ref
from storage.records import (
    VERDICTS,
    FeedbackRecord,
    IncidentNotFoundError,
    IncidentRecord,
    MessageRef,
    SilenceRecord,
    feedback_record,
    incident_record,
    message_ref_of,
    require_aware,
    silence_record,
)
from storage.scans import insert_scores


class IncidentStore:
    """All reads and writes of incidents and their messages; one short transaction per call.

    A mixin of ``storage.repository.Repository``, which provides the attributes below.
    """

    score_epsilon: float
    cluster: str | None
    score_history_min: float
    _sessions: sessionmaker[Session]
    _readers: sessionmaker[Session]

    def _mine(self) -> list[Any]:
        """WHERE clauses keeping this store's cluster's incidents (none when unscoped)."""
        return [] if self.cluster is None else [IncidentRow.cluster == self.cluster]

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
        tracker: tuple[str, Mapping[str, Any]] | None = None,
        maintenance: Sequence[str] = (),
        merged: Mapping[str, str] | None = None,
    ) -> list[Decision]:
        """Decide and persist one cycle in ONE transaction; return a decision per dedup key.

        The stored open incidents and the active silences are read in the transaction and
        ``analysis.lifecycle.decide_cycle`` decides every current and stored open incident;
        each decision is written with its outbox row (``notify``) in the same transaction.
        ``data_ok=False`` never resolves anything; ``unobserved`` names nodes, GPU keys or
        component ids that had no data this cycle (partial outage, a GPU fallen off the bus):
        open incidents involving them are not resolved either. ``scores``, when given, go to
        the score history in the same transaction. ``images`` (dedup key -> name -> PNG) are
        stored with a ``post`` decision in the same transaction, so an alert and its pictures
        are committed together. ``tracker`` (pipeline name, ``IncidentTracker.state()``) is the
        streak state after this cycle, stored in the same transaction so that a new leader
        resumes from it (``tracker_state``). ``maintenance`` names targets under planned
        maintenance now: they act as silences (recorded, not posted). ``merged`` (dedup key ->
        the broader incident's title, ``IncidentTracker.merged``) resolves those incidents as
        merged into the broader one, said so in the outbox row. Duplicate dedup keys keep
        the worst. A scoped store (``Repository.scoped``) decides its cluster's incidents only.
        """
        require_aware(at, "at")
        reported = {inc.dedup_key for inc in incidents}
        pictures_by_key = images or {}
        decisions: list[Decision] = []
        with self._sessions.begin() as s:
            silences = [r.target for r in s.scalars(_active_silences_query(at))] + list(maintenance)
            open_rows = {
                row.dedup_key: row
                for row in s.scalars(
                    select(IncidentRow).where(IncidentRow.open_key.is_not(None), *self._mine())
                )
            }
            planned = decide_cycle(
                incidents,
                {key: _stored_state(row) for key, row in open_rows.items()},
                data_ok=data_ok,
                silences=silences,
                unobserved=unobserved,
                score_epsilon=self.score_epsilon,
                merged=merged,
            )
            for d in planned:
                # A reported key's decision carries this cycle's incident; a stored one the
                # cycle no longer reports carries only the stored snapshot.
                current = d.incident if d.dedup_key in reported else None
                done = _persist(
                    s, at, d, open_rows.get(d.dedup_key), current, cluster=self.cluster or ""
                )
                decisions.append(done)
                pictures = pictures_by_key.get(d.dedup_key)
                if pictures and done.action is Action.POST and done.incident_id is not None:
                    _put_images(s, done.incident_id, pictures, at)
            if scores:
                insert_scores(s, at, scores, self.cluster or "", self.score_history_min)
            if tracker is not None:
                _put_tracker_state(s, tracker[0], tracker[1], at)
        return decisions

    def tracker_state(self, pipeline: str) -> dict[str, Any] | None:
        """Return the streak state the last cycle of ``pipeline`` stored, or None."""
        with self._readers() as s:
            row = s.get(TrackerStateRow, pipeline)
            return dict(row.state) if row is not None else None

    # ------------------------------------------------------------------ incidents (reads)

    def incident(self, incident_id: int) -> IncidentRecord | None:
        """Return the incident with this id, or None."""
        with self._readers() as s:
            row = s.get(IncidentRow, incident_id)
            return incident_record(row) if row else None

    def open_by_key(self, dedup_key: str) -> IncidentRecord | None:
        """Return the open (or acknowledged) incident with this dedup key (in this store's
        cluster; unscoped: the cluster ``""``), or None."""
        with self._readers() as s:
            key = open_key(self.cluster or "", dedup_key)
            row = s.scalar(select(IncidentRow).where(IncidentRow.open_key == key))
            return incident_record(row) if row else None

    def open_incidents(self) -> list[IncidentRecord]:
        """Return open and acknowledged incidents, most severe and riskiest first."""
        with self._readers() as s:
            rows = s.scalars(
                select(IncidentRow).where(IncidentRow.open_key.is_not(None), *self._mine())
            ).all()
            records = [incident_record(r) for r in rows]
        return sorted(records, key=lambda r: (-severity_rank(r.severity), -r.score, r.id))

    def incidents(self, *, since: datetime | None = None, limit: int = 100) -> list[IncidentRecord]:
        """Return incidents (any status) last seen at or after ``since``, newest first."""
        with self._readers() as s:
            q = (
                select(IncidentRow)
                .where(*self._mine())
                .order_by(IncidentRow.last_seen.desc(), IncidentRow.id.desc())
            )
            if since is not None:
                q = q.where(IncidentRow.last_seen >= since)
            return [incident_record(r) for r in s.scalars(q.limit(limit))]

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
                    ),
                    *self._mine(),
                )
                .order_by(
                    IncidentRow.open_key.is_(None),  # open first (False < True)
                    IncidentRow.last_seen.desc(),
                    IncidentRow.id.desc(),
                )
                .limit(limit)
            )
            return [incident_record(r) for r in s.scalars(q)]

    # ------------------------------------------------------------------ human actions

    def acknowledge(self, incident_id: int, user: str, at: datetime) -> IncidentRecord:
        """Record an acknowledgement; an open incident becomes acknowledged (no more pages
        unless severity rises). Acknowledging again or after resolution only adds history.
        Raise IncidentNotFoundError for an unknown id."""
        require_aware(at, "at")
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
            return incident_record(row)

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
        require_aware(at, "at")
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}: expected false_alarm or confirmed")
        with self._sessions.begin() as s:
            if s.get(IncidentRow, incident_id) is None:
                raise IncidentNotFoundError(f"no incident with id {incident_id}")
            row = FeedbackRow(incident_id=incident_id, verdict=verdict, who=who, at=at, note=note)
            s.add(row)
            s.flush()
            return feedback_record(row)

    def feedback(self, incident_id: int | None = None) -> list[FeedbackRecord]:
        """Return feedback, for one incident or all (of this store's cluster), oldest first."""
        with self._readers() as s:
            q = select(FeedbackRow).order_by(FeedbackRow.id)
            if self.cluster is not None:
                q = q.join(IncidentRow, IncidentRow.id == FeedbackRow.incident_id).where(
                    *self._mine()
                )
            if incident_id is not None:
                q = q.where(FeedbackRow.incident_id == incident_id)
            return [feedback_record(r) for r in s.scalars(q)]

    def silence(
        self, target: str, until: datetime, who: str, reason: str, at: datetime
    ) -> SilenceRecord:
        """Silence a dedup key, GPU key, node or component id until ``until``."""
        require_aware(at, "at")
        require_aware(until, "until")
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
            return silence_record(row)

    def unsilence(self, target: str, at: datetime, who: str | None = None) -> int:
        """Lift every active silence on ``target``; return how many were lifted."""
        require_aware(at, "at")
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
        require_aware(at, "at")
        with self._readers() as s:
            return [silence_record(r) for r in s.scalars(_active_silences_query(at))]

    def is_silenced(self, incident: Incident, at: datetime) -> bool:
        """Return True when an active silence covers the incident (see ``silence_matches``)."""
        return any(silence_matches(incident, r.target) for r in self.active_silences(at))

    # ------------------------------------------------------------------ messages and images

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
        require_aware(at, "at")
        with self._sessions.begin() as s:
            if s.get(IncidentRow, incident_id) is None:
                raise IncidentNotFoundError(f"no incident with id {incident_id}")
            ref = MessageRef(channel, ts, thread_ts)
            upsert_message_ref(s, incident_id, ref, at)
            return ref

    def message_ref(self, incident_id: int, channel: str | None = None) -> MessageRef | None:
        """Return the incident's Slack message (in ``channel``, or its first), or None."""
        with self._readers() as s:
            q = select(MessageRefRow).where(MessageRefRow.incident_id == incident_id)
            if channel is not None:
                q = q.where(MessageRefRow.channel == channel)
            row = s.scalar(q.order_by(MessageRefRow.id).limit(1))
            return message_ref_of(row) if row else None

    def save_images(self, incident_id: int, images: Mapping[str, bytes], *, at: datetime) -> int:
        """Store (or replace, by name) an incident's PNGs; return how many were written."""
        require_aware(at, "at")
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


def open_key(cluster: str, dedup_key: str) -> str:
    """The unique key of an open incident: its dedup key, prefixed by its cluster when named.

    A dedup key starts with its root cause's kind (``gpu:``, ``rack:``), which has no ``/``, so a
    named cluster's key (``a/gpu:node-1/0``) never equals a key of the cluster ``""``.
    """
    return f"{cluster}/{dedup_key}" if cluster else dedup_key


# ---------------------------------------------------------------------- in an open transaction


def _persist(
    s: Session,
    at: datetime,
    d: Decision,
    row: IncidentRow | None,
    inc: Incident | None,
    *,
    cluster: str = "",
) -> Decision:
    """Write one decision (incident row + outbox row) into the open transaction."""
    if inc is not None:
        if row is None:
            row = IncidentRow(
                cluster=cluster,
                dedup_key=inc.dedup_key,
                open_key=open_key(cluster, inc.dedup_key),
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
        recurs = _recurs(s, at, row) if d.action is Action.POST else None
        outbox_id = enqueue_row(
            s,
            at=at,
            kind=d.action.value,
            incident_id=row.id,
            idempotency_key=f"incident:{row.id}:{row.notify_seq}:{d.action.value}",
            payload={
                "action": d.action.value,
                "cluster": row.cluster,
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
            }
            | ({"recurs": recurs} if recurs else {})
            | ({"merged_into": d.merged_into} if d.merged_into else {}),
        )
    else:
        s.flush()
    snapshot = d.incident if d.incident is not None else Incident.from_dict(row.snapshot)
    return replace(d, incident=snapshot, incident_id=row.id, outbox_id=outbox_id)


def _recurs(s: Session, at: datetime, row: IncidentRow) -> dict[str, Any] | None:
    """The incident of the same root cause resolved within ``RECURRENCE_WINDOW`` before ``at``
    (the latest), as the payload's ``recurs`` field; None when there is none."""
    last = s.scalars(
        select(IncidentRow)
        .where(
            IncidentRow.cluster == row.cluster,
            IncidentRow.dedup_key == row.dedup_key,
            IncidentRow.status == "resolved",
            IncidentRow.resolved_at >= at - RECURRENCE_WINDOW,
            IncidentRow.id != row.id,
        )
        .order_by(IncidentRow.resolved_at.desc(), IncidentRow.id.desc())
        .limit(1)
    ).first()
    if last is None or last.resolved_at is None:
        return None
    return {
        "incident_id": last.id,
        "first_seen": format_time(last.first_seen),
        "resolved_at": format_time(last.resolved_at),
    }


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


def _put_tracker_state(s: Session, pipeline: str, state: Mapping[str, Any], at: datetime) -> None:
    """Insert or replace a pipeline's tracker state in the open transaction."""
    row = s.get(TrackerStateRow, pipeline)
    if row is None:
        s.add(TrackerStateRow(pipeline=pipeline, state=dict(state), at=at))
    else:
        row.state, row.at = dict(state), at
