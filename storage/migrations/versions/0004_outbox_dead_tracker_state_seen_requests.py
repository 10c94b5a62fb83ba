"""Outbox dead letters (dead_at), incident tracker streaks, the request replay guard, model blobs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add outbox.dead_at; create tracker_state, seen_requests and model_blobs."""
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "tracker_state",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", name=op.f("pk_tracker_state")),
    )
    op.create_table(
        "seen_requests",
        sa.Column("signature", sa.String(length=255), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_seen_requests")),
    )
    op.create_index(op.f("ix_seen_requests_seen_at"), "seen_requests", ["seen_at"], unique=False)
    op.create_table(
        "model_blobs",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_model_blobs")),
    )


def downgrade() -> None:
    """Drop model_blobs, seen_requests, tracker_state and outbox.dead_at."""
    op.drop_table("model_blobs")
    op.drop_index(op.f("ix_seen_requests_seen_at"), table_name="seen_requests")
    op.drop_table("seen_requests")
    op.drop_table("tracker_state")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("dead_at")
