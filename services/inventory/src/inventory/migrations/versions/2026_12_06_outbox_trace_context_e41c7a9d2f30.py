"""Outbox rows keep the trace context of the transaction that wrote them.

The relay sends it in the message's AMQP headers (traceparent, tracestate), so a consumer
continues the trace (docs/tracing.md). NULL when tracing is off.

Revision ID: e41c7a9d2f30
Revises: b7e3f19a2c64
Created: 2026-12-06 00:40:00
"""

from collections.abc import Sequence

from shared.messaging.tables import add_outbox_trace_context, drop_outbox_trace_context

revision: str = "e41c7a9d2f30"
down_revision: str | None = "b7e3f19a2c64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    add_outbox_trace_context(SCHEMA)


def downgrade() -> None:
    drop_outbox_trace_context(SCHEMA)
