"""Replica runs: each replica process's creation and exit, for per-second billing.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replica_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("replica_id", sa.String(32), nullable=False),
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("instance_type", sa.String(128), nullable=False),
        sa.Column("instance_size", sa.String(64), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_replica_runs_replica_id", "replica_runs", ["replica_id"])
    op.create_index("ix_replica_runs_started_at", "replica_runs", ["started_at"])


def downgrade() -> None:
    op.drop_table("replica_runs")
