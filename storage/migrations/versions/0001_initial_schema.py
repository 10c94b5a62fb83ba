"""Initial schema: incidents, Slack refs, acks, silences, feedback, scans, leases, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    """Return an aware timestamp column."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the 0001 tables."""
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("open_key", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("root_cause_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("peak_severity", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("notified_severity", sa.String(length=16), nullable=True),
        sa.Column("notified_score", sa.Float(), nullable=True),
        sa.Column("notify_seq", sa.Integer(), nullable=False),
        sa.Column("last_action", sa.String(length=16), nullable=False),
        _ts("first_seen"),
        _ts("last_seen"),
        _ts("resolved_at", nullable=True),
        _ts("acknowledged_at", nullable=True),
        sa.Column("acknowledged_by", sa.String(length=255), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("open_key", name=op.f("uq_incidents_open_key")),
    )
    op.create_index(op.f("ix_incidents_dedup_key"), "incidents", ["dedup_key"])
    op.create_index(op.f("ix_incidents_root_cause_id"), "incidents", ["root_cause_id"])
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"])

    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "runtime_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        _ts("since"),
        sa.Column("counter", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_runtime_state")),
    )
    op.create_table(
        "scan_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _ts("at"),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("gpus_scored", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_runs")),
    )
    op.create_index(op.f("ix_scan_runs_at"), "scan_runs", ["at"])
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        _ts("until"),
        sa.Column("who", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("lifted_at", nullable=True),
        sa.Column("lifted_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_index(op.f("ix_silences_target"), "silences", ["target"])
    op.create_index(op.f("ix_silences_until"), "silences", ["until"])

    def incident_fk(table: str) -> sa.ForeignKeyConstraint:
        """Return the cascading foreign key to incidents.id."""
        return sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f(f"fk_{table}_incident_id_incidents"),
            ondelete="CASCADE",
        )

    op.create_table(
        "acknowledgements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        _ts("at"),
        incident_fk("acknowledgements"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_acknowledgements")),
    )
    op.create_index(
        op.f("ix_acknowledgements_incident_id"), "acknowledgements", ["incident_id"]
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("who", sa.String(length=255), nullable=False),
        _ts("at"),
        sa.Column("note", sa.Text(), nullable=False),
        incident_fk("feedback"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_index(op.f("ix_feedback_incident_id"), "feedback", ["incident_id"])
    op.create_table(
        "incident_gpus",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("gpu_key", sa.String(length=255), nullable=False),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        incident_fk("incident_gpus"),
        sa.PrimaryKeyConstraint("incident_id", "gpu_key", name=op.f("pk_incident_gpus")),
    )
    op.create_index(op.f("ix_incident_gpus_gpu_key"), "incident_gpus", ["gpu_key"])
    op.create_index(op.f("ix_incident_gpus_node"), "incident_gpus", ["node"])
    op.create_table(
        "message_refs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.String(length=64), nullable=False),
        sa.Column("thread_ts", sa.String(length=64), nullable=True),
        _ts("created_at"),
        incident_fk("message_refs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_refs")),
        sa.UniqueConstraint(
            "incident_id", "channel", name=op.f("uq_message_refs_incident_id_channel")
        ),
    )
    op.create_index(op.f("ix_message_refs_incident_id"), "message_refs", ["incident_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _ts("created_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        _ts("claim_expires_at", nullable=True),
        _ts("retry_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("sent_at", nullable=True),
        sa.Column("message_ref", sa.JSON(), nullable=True),
        incident_fk("outbox"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index(op.f("ix_outbox_incident_id"), "outbox", ["incident_id"])
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])


def downgrade() -> None:
    """Drop every 0001 table (children first)."""
    for table in (
        "outbox",
        "message_refs",
        "incident_gpus",
        "feedback",
        "acknowledgements",
        "silences",
        "scan_runs",
        "runtime_state",
        "leases",
        "incidents",
    ):
        op.drop_table(table)
