"""Orders remember when their reservation expires, to stop asking for payment before it.

Revision ID: 4d8f6a2c9e17
Revises: 5e1f82b9c4d3
Created: 2026-12-05 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4d8f6a2c9e17"
down_revision: str | None = "5e1f82b9c4d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("reservation_expires_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("orders", "reservation_expires_at", schema=SCHEMA)
