"""One bot, several clusters: incidents, scans, scores and models carry their cluster.

Existing rows belong to the cluster ``""`` (a bot without a clusters file). The column is added
in place on both backends (no table is recreated: SQLite would cascade-delete the incidents'
children while copying), and dropped in place on downgrade (SQLite >= 3.35).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("incidents", "scan_runs", "scores", "model_versions")


def upgrade() -> None:
    """Add ``cluster`` (default ``""``) to incidents, scan_runs, scores and model_versions."""
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("cluster", sa.String(length=64), server_default="", nullable=False),
        )
    op.create_index(op.f("ix_scores_cluster_at"), "scores", ["cluster", "at"], unique=False)


def downgrade() -> None:
    """Drop the cluster columns (rows of named clusters stay, as if of the one cluster)."""
    op.drop_index(op.f("ix_scores_cluster_at"), table_name="scores")
    for table in TABLES:
        if op.get_bind().dialect.name == "sqlite":  # in place: no batch copy of the table
            op.execute(f"ALTER TABLE {table} DROP COLUMN cluster")
        else:
            op.drop_column(table, "cluster")
