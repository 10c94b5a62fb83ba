"""SQLAlchemy 2.x models of the state store (incidents, Slack refs, silences, outbox, ...).

Every timestamp is a ``UtcDateTime``: aware UTC in, aware UTC out, on SQLite too (SQLite has no
time zones and hands back naive datetimes; this type normalises them). Alembic migrations in
``storage/migrations/versions`` must produce exactly this schema (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (naive values are refused on write)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC (naive UTC on SQLite, which has no zones)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value!r}: pass an aware UTC time, e.g. datetime.now(UTC)"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC (SQLite gives naive values back)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations name constraints stably."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy's documented form
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class IncidentRow(Base):
    """One incident's life from first sighting to resolution.

    ``cluster`` names the cluster a bot watching several found it in (``""``: the one cluster
    of a bot without a clusters file). ``open_key`` is ``dedup_key`` (``cluster/dedup_key`` in a
    named cluster, see ``storage.incidents.open_key``) while the incident is open or acknowledged
    and NULL once resolved; its unique constraint enforces one open incident per dedup key and
    cluster on every backend. ``notified_*`` hold what the last committed notification said
    (None = never posted).
    """

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cluster: Mapped[str] = mapped_column(String(64), default="", server_default="")
    dedup_key: Mapped[str] = mapped_column(String(255), index=True)
    open_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    root_cause_id: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    peak_severity: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    notified_severity: Mapped[str | None] = mapped_column(String(16))
    notified_score: Mapped[float | None] = mapped_column(Float)
    notify_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_action: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    snapshot: Mapped[dict[str, Any]]

    gpus: Mapped[list[IncidentGpuRow]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", lazy="selectin"
    )
    message_refs: Mapped[list[MessageRefRow]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", lazy="selectin"
    )


class IncidentGpuRow(Base):
    """An affected GPU of an incident (latest snapshot), for lookups by node or GPU key."""

    __tablename__ = "incident_gpus"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    gpu_key: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    node: Mapped[str] = mapped_column(String(255), index=True)
    score: Mapped[float] = mapped_column(Float)

    incident: Mapped[IncidentRow] = relationship(back_populates="gpus")


class MessageRefRow(Base):
    """Where an incident's alert lives in Slack (one per incident and channel)."""

    __tablename__ = "message_refs"
    __table_args__ = (UniqueConstraint("incident_id", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(64))
    ts: Mapped[str] = mapped_column(String(64))
    thread_ts: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]

    incident: Mapped[IncidentRow] = relationship(back_populates="message_refs")


class AcknowledgementRow(Base):
    """Who acknowledged an incident, and when."""

    __tablename__ = "acknowledgements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime]


class SilenceRow(Base):
    """A silence on a dedup key, GPU key, node or component id, until a time."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(255), index=True)
    until: Mapped[datetime] = mapped_column(index=True)
    who: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(255))


class FeedbackRow(Base):
    """A human verdict on an incident: false_alarm or confirmed."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    verdict: Mapped[str] = mapped_column(String(32))
    who: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime]
    note: Mapped[str] = mapped_column(Text, default="")


class ScanRunRow(Base):
    """One scan cycle of one cluster: when, whether its data source answered, how long, how many
    GPUs."""

    __tablename__ = "scan_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cluster: Mapped[str] = mapped_column(String(64), default="", server_default="")
    at: Mapped[datetime] = mapped_column(index=True)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float] = mapped_column(Float)
    gpus_scored: Mapped[int] = mapped_column(Integer)


class RuntimeStateRow(Base):
    """Small named state values (e.g. ``data_source`` = ok/degraded) with their change time."""

    __tablename__ = "runtime_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    since: Mapped[datetime]
    counter: Mapped[int] = mapped_column(Integer, default=0)


class LeaseRow(Base):
    """A named lease (leader election without advisory locks): holder and expiry."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]


class OutboxRow(Base):
    """A notification committed with the change that caused it, sent later by the notifier.

    ``status``: pending (to send, possibly claimed), sent, or dead (gave up after its last
    allowed attempt, at ``dead_at``; an admin may send it back to pending).
    A pending row is claimable when ``claim_expires_at`` is NULL or past and ``retry_at`` is
    NULL or past, and no earlier pending row of the same incident exists (order per incident).
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    payload: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claim_expires_at: Mapped[datetime | None]
    retry_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    message_ref: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    dead_at: Mapped[datetime | None]


class ScoreRow(Base):
    """Score history: one GPU's calibrated risk at one cycle of its cluster, kept when it was at
    least the store's ``score_history_min`` (pruned by retention). Every GPU's every score is
    the bot's ``gpu_risk_score`` gauge, for the TSDB that scrapes it."""

    __tablename__ = "scores"
    __table_args__ = (
        Index("ix_scores_gpu_key_at", "gpu_key", "at"),
        Index("ix_scores_cluster_at", "cluster", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(64), default="", server_default="")
    at: Mapped[datetime] = mapped_column(index=True)
    gpu_key: Mapped[str] = mapped_column(String(255))
    score: Mapped[float] = mapped_column(Float)


class LatestScoreRow(Base):
    """Every GPU's calibrated risk at its cluster's latest scored cycle (replaced by each cycle):
    what ``/gpu-risk`` and the App Home show, whatever the history keeps."""

    __tablename__ = "latest_scores"

    cluster: Mapped[str] = mapped_column(String(64), primary_key=True)
    gpu_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    at: Mapped[datetime]
    score: Mapped[float] = mapped_column(Float)


class ModelVersionRow(Base):
    """A fitted model: cluster, name, the fleet it was fitted on, its features, version, file,
    metrics."""

    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_name_fitted_at", "name", "fitted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cluster: Mapped[str] = mapped_column(String(64), default="", server_default="")
    name: Mapped[str] = mapped_column(String(64))
    fleet_fingerprint: Mapped[str] = mapped_column(String(128), index=True)
    features: Mapped[list[str]]
    version: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    fitted_at: Mapped[datetime]
    metrics: Mapped[dict[str, Any]]


class IncidentImageRow(Base):
    """A rendered PNG of an incident (graph, metrics), kept so a restarted bot can still send it."""

    __tablename__ = "incident_images"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    png: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class TrackerStateRow(Base):
    """One pipeline's incident tracker streaks (JSON), written with the cycle that produced them."""

    __tablename__ = "tracker_state"

    pipeline: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]]
    at: Mapped[datetime]


class SeenRequestRow(Base):
    """A request signature already handled (replay guard), pruned after its time to live."""

    __tablename__ = "seen_requests"

    signature: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


class ModelBlobRow(Base):
    """A fitted model's bytes kept in the database (PostgreSQL deployments: shared by replicas)."""

    __tablename__ = "model_blobs"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    saved_at: Mapped[datetime]


class MaintenanceWindowRow(Base):
    """A maintenance window added in Slack: one-off (``start``) or recurring (``at`` + ``days``).

    ``at`` is the UTC time of day as ``HH:MM``, ``days`` comma-separated weekday names (empty =
    every day). Removed windows keep their row (``removed_at``/``removed_by``) as a record.
    """

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(255), index=True)
    start: Mapped[datetime | None]
    at: Mapped[str | None] = mapped_column(String(5))
    days: Mapped[str] = mapped_column(String(64), default="")
    duration_s: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text, default="")
    who: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None] = mapped_column(index=True)
    removed_by: Mapped[str | None] = mapped_column(String(255))
