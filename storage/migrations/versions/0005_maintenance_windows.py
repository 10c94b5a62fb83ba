"""Maintenance windows added in Slack (``/gpu-risk maintenance add``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create maintenance_windows."""
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at", sa.String(length=5), nullable=True),
        sa.Column("days", sa.String(length=64), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("who", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("removed_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_windows")),
    )
    op.create_index(
        op.f("ix_maintenance_windows_target"), "maintenance_windows", ["target"], unique=False
    )
    op.create_index(
        op.f("ix_maintenance_windows_removed_at"),
        "maintenance_windows",
        ["removed_at"],
        unique=False,
    )


def downgrade() -> None:
    """Drop maintenance_windows."""
    op.drop_index(op.f("ix_maintenance_windows_removed_at"), table_name="maintenance_windows")
    op.drop_index(op.f("ix_maintenance_windows_target"), table_name="maintenance_windows")
    op.drop_table("maintenance_windows")
