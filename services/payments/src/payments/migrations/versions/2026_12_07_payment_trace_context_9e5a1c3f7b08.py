"""Payments keep the trace context of the transaction that wrote them.

A periodic job acting on the row later emits its events in that trace, so they continue the
order's trace (docs/tracing.md). NULL when tracing is off.

Revision ID: 9e5a1c3f7b08
Revises: c8e2f4a61d97
Created: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9e5a1c3f7b08"
down_revision: str | None = "c8e2f4a61d97"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    op.add_column(
        "payments", sa.Column("trace_context", postgresql.JSONB(), nullable=True), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("payments", "trace_context", schema=SCHEMA)
