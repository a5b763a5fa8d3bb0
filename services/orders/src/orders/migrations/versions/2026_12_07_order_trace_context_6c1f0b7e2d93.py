"""Orders keep the trace context of the transaction that wrote them.

A periodic job acting on the row later emits its events in that trace, so they continue the
order's trace (docs/tracing.md). NULL when tracing is off.

Revision ID: 6c1f0b7e2d93
Revises: a3d95c1e7b42
Created: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "6c1f0b7e2d93"
down_revision: str | None = "a3d95c1e7b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.add_column(
        "orders", sa.Column("trace_context", postgresql.JSONB(), nullable=True), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("orders", "trace_context", schema=SCHEMA)
