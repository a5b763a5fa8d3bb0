"""Outbox rows keep the trace context of the transaction that wrote them.

The relay sends it in the message's AMQP headers (traceparent, tracestate), so a consumer
continues the trace (docs/tracing.md). NULL when tracing is off.

Revision ID: c8e2f4a61d97
Revises: 3f6a9d2c1b84
Created: 2026-12-06 00:40:00
"""

from collections.abc import Sequence

from shared.messaging.tables import add_outbox_trace_context, drop_outbox_trace_context

revision: str = "c8e2f4a61d97"
down_revision: str | None = "3f6a9d2c1b84"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    add_outbox_trace_context(SCHEMA)


def downgrade() -> None:
    drop_outbox_trace_context(SCHEMA)
