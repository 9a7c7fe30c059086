"""Usage records name the caller's address and the served model revision; request texts kept
for endpoints that opt in.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable): no rewrite of a large usage table
    op.add_column("usage_records", sa.Column("client", sa.String(64), nullable=True))
    op.add_column("usage_records", sa.Column("model", sa.String(512), nullable=True))
    op.add_column("usage_records", sa.Column("revision", sa.String(128), nullable=True))
    op.create_table(
        "request_texts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("completion", sa.Text, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    op.create_index("ix_request_texts_request_id", "request_texts", ["request_id"])
    op.create_index("ix_request_texts_expires_at", "request_texts", ["expires_at"])


def downgrade() -> None:
    op.drop_table("request_texts")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("revision")
        batch.drop_column("model")
        batch.drop_column("client")
