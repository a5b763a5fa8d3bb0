"""Outbox rows keep the trace context of the transaction that wrote them.

The relay sends it in the message's AMQP headers (traceparent, tracestate), so a consumer
continues the trace (docs/tracing.md). NULL when tracing is off.

Revision ID: a3d95c1e7b42
Revises: 8b3e5f1a7c20
Created: 2026-12-06 00:40:00
"""

from collections.abc import Sequence

from shared.messaging.tables import add_outbox_trace_context, drop_outbox_trace_context

revision: str = "a3d95c1e7b42"
down_revision: str | None = "8b3e5f1a7c20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    add_outbox_trace_context(SCHEMA)


def downgrade() -> None:
    drop_outbox_trace_context(SCHEMA)
