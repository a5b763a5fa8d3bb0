"""Reservations keep the trace context of the transaction that wrote them.

A periodic job acting on the row later emits its events in that trace, so they continue the
order's trace (docs/tracing.md). NULL when tracing is off.

Revision ID: 2b8d4e6f1a37
Revises: e41c7a9d2f30
Created: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "2b8d4e6f1a37"
down_revision: str | None = "e41c7a9d2f30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    op.add_column(
        "reservations", sa.Column("trace_context", postgresql.JSONB(), nullable=True), schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_column("reservations", "trace_context", schema=SCHEMA)
