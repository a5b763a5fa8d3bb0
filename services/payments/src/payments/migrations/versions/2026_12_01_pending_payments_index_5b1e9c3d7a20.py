"""Index the payments still pending by their last change, for the reconciler's claim.

Revision ID: 5b1e9c3d7a20
Revises: 8c04d6e2a1f7
Created: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e9c3d7a20"
down_revision: str | None = "8c04d6e2a1f7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    op.create_index(
        "ix_payments_pending_updated_at",
        "payments",
        ["updated_at", "id"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_pending_updated_at", table_name="payments", schema=SCHEMA)
