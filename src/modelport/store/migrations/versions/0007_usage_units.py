"""Usage records carry the work that is not tokens (audio seconds, images, documents, pixels) that
a replica reported for a task route.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (nullable): no rewrite of a large usage table; NULL for token-only requests
    op.add_column("usage_records", sa.Column("units", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("units")
