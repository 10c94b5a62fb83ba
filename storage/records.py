"""What the state store hands out: frozen records, their vocabularies, and the row->record mappers.

Records never carry a session: every mapper copies what it needs from an ORM row while the
row's transaction is open, so callers may keep a record after the call returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from analysis.types import Incident
from storage.models import (
    FeedbackRow,
    IncidentRow,
    MessageRefRow,
    ModelVersionRow,
    OutboxRow,
    ScanRunRow,
    SilenceRow,
)

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
    cluster: str = ""
    """The cluster it was found in (``""``: the one cluster of a bot without a clusters file)."""

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
    dead_at: datetime | None = None

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
    cluster: str = ""


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
    cluster: str = ""


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
    dead_notifications: int = 0

    def model_age(self, at: datetime) -> timedelta | None:
        """Return how old the newest model is at ``at`` (None when no model was recorded)."""
        return None if self.model is None else at - self.model.fitted_at


# ---------------------------------------------------------------------- checks and mappers


def require_aware(value: datetime, name: str) -> None:
    """Refuse naive datetimes with a message that says what to pass."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware UTC datetime (got naive {value!r})")


def message_ref_of(row: MessageRefRow) -> MessageRef:
    """Return the public record of a message reference row."""
    return MessageRef(row.channel, row.ts, row.thread_ts)


def incident_record(row: IncidentRow) -> IncidentRecord:
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
        message_refs=tuple(message_ref_of(m) for m in sorted(row.message_refs, key=lambda m: m.id)),
        last_action=row.last_action,
        cluster=row.cluster or "",
    )


def silence_record(row: SilenceRow) -> SilenceRecord:
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


def feedback_record(row: FeedbackRow) -> FeedbackRecord:
    """Return the public record of a feedback row."""
    return FeedbackRecord(row.id, row.incident_id, row.verdict, row.who, row.at, row.note)


def outbox_item(row: OutboxRow) -> OutboxItem:
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
        dead_at=row.dead_at,
    )


def scan_run(row: ScanRunRow) -> ScanRun:
    """Return the public record of a scan row."""
    return ScanRun(
        row.id, row.at, row.ok, row.error, row.duration_s, row.gpus_scored, row.cluster or ""
    )


def model_version(row: ModelVersionRow) -> ModelVersion:
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
        cluster=row.cluster or "",
    )
