"""Outbox rows keep the trace context of the transaction that wrote them.

The relay sends it in the message's AMQP headers (traceparent, tracestate), so a consumer
continues the trace (docs/tracing.md). NULL when tracing is off.

Revision ID: e41c7a9d2f30
Revises: b7e3f19a2c64
Created: 2026-12-06 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e41c7a9d2f30"
down_revision: str | None = "b7e3f19a2c64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column("trace_context", postgresql.JSONB(), nullable=True),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("outbox", "trace_context", schema=SCHEMA)
