"""Autoscaling: per-endpoint scaling windows and warm standby, the autoscaler's count, its decisions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("endpoints", sa.Column("scale_to_zero_after_s", sa.Float, nullable=True))
    op.add_column("endpoints", sa.Column("stabilization_s", sa.Float, nullable=True))
    op.add_column("endpoints", sa.Column("warm_standby", sa.Integer, nullable=False, server_default="0"))
    op.add_column("endpoints", sa.Column("desired_replicas", sa.Integer, nullable=True))
    op.create_table(
        "scaling_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "endpoint_id", sa.Integer, sa.ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("previous", sa.Integer, nullable=False),
        sa.Column("desired", sa.Integer, nullable=False),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
    )
    op.create_index("ix_scaling_events_endpoint_id", "scaling_events", ["endpoint_id"])


def downgrade() -> None:
    op.drop_table("scaling_events")
    op.drop_column("endpoints", "desired_replicas")
    op.drop_column("endpoints", "warm_standby")
    op.drop_column("endpoints", "stabilization_s")
    op.drop_column("endpoints", "scale_to_zero_after_s")
