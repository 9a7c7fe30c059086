"""Endpoints, their model revisions and replicas.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("accelerator", sa.String(16), nullable=False),
        sa.Column("instance_type", sa.String(128), nullable=False),
        sa.Column("instance_size", sa.String(64), nullable=False),
        sa.Column("min_replica", sa.Integer, nullable=False),
        sa.Column("max_replica", sa.Integer, nullable=False),
        sa.Column("scale_to_zero_timeout", sa.Integer, nullable=True),
        sa.Column("scaling_measure", sa.JSON, nullable=True),
        sa.Column("vendor", sa.String(64), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("intent", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("good_generation", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("ready_replicas", sa.Integer, nullable=False),
        sa.Column("target_replicas", sa.Integer, nullable=False),
        sa.Column("update_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("namespace", "name", name="uq_endpoints_namespace_name"),
    )
    op.create_table(
        "model_revisions",
        sa.Column(
            "endpoint_id", sa.Integer, sa.ForeignKey("endpoints.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("generation", sa.Integer, primary_key=True),
        sa.Column("repository", sa.Text, nullable=False),
        sa.Column("revision", sa.String(256), nullable=True),
        sa.Column("task", sa.String(64), nullable=True),
        sa.Column("framework", sa.String(32), nullable=False),
        sa.Column("image_kind", sa.String(32), nullable=False),
        sa.Column("image_config", sa.JSON, nullable=False),
        sa.Column("env", sa.JSON, nullable=False),
        sa.Column("secrets", sa.JSON, nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "endpoint_id", sa.Integer, sa.ForeignKey("endpoints.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("runtime", sa.String(16), nullable=False),
        sa.Column("handle", sa.JSON, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("restarts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exited_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_replicas_endpoint_id", "replicas", ["endpoint_id"])


def downgrade() -> None:
    op.drop_table("replicas")
    op.drop_table("model_revisions")
    op.drop_table("endpoints")
