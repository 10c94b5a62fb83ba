"""Compact score history (with retention) and fitted model versions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create scores and model_versions."""
    op.create_table(
        "scores",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gpu_key", sa.String(length=255), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scores")),
    )
    op.create_index(op.f("ix_scores_at"), "scores", ["at"])
    op.create_index("ix_scores_gpu_key_at", "scores", ["gpu_key", "at"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("fleet_fingerprint", sa.String(length=128), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
    )
    op.create_index(
        op.f("ix_model_versions_fleet_fingerprint"), "model_versions", ["fleet_fingerprint"]
    )
    op.create_index("ix_model_versions_name_fitted_at", "model_versions", ["name", "fitted_at"])


def downgrade() -> None:
    """Drop scores and model_versions."""
    op.drop_table("model_versions")
    op.drop_table("scores")
