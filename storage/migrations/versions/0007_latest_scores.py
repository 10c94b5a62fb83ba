"""Every GPU's latest score in its own table; the score history keeps GPUs at risk only.

Until 0006 each cycle appended every GPU's score to ``scores``, and the commands read the newest
cycle back from it: at 100,000 GPUs and a scan a minute, 144 million rows a day, two billion at
the default 14 days of retention. ``latest_scores`` holds one row per GPU and cluster, replaced
by each cycle; it starts with each cluster's newest cycle in ``scores``. Rows already in
``scores`` stay until retention prunes them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

#: Each cluster's newest scored cycle, one row per GPU (a key scored twice keeps its highest).
BACKFILL = """
INSERT INTO latest_scores (cluster, gpu_key, at, score)
SELECT s.cluster, s.gpu_key, max(s.at), max(s.score)
FROM scores s
JOIN (SELECT cluster, max(at) AS at FROM scores GROUP BY cluster) newest
  ON s.cluster = newest.cluster AND s.at = newest.at
GROUP BY s.cluster, s.gpu_key
"""


def upgrade() -> None:
    """Create latest_scores, filled from the newest cycle of each cluster's score history."""
    op.create_table(
        "latest_scores",
        sa.Column("cluster", sa.String(length=64), nullable=False),
        sa.Column("gpu_key", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("cluster", "gpu_key", name=op.f("pk_latest_scores")),
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    """Drop latest_scores (the previous code reads the newest cycle of ``scores``)."""
    op.drop_table("latest_scores")
