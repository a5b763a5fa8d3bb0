"""The outbox and inbox tables in a service's migrations: one definition for every service.

A migration calls these inside ``upgrade()`` / ``downgrade()`` (they use Alembic's ``op``)
with the service's schema. They create the tables as the service's first messaging
migration did (``OutboxMixin`` and ``InboxMixin``), so the migrations that call them produce
the same schema as before; the inbox's pruning index came with a later migration and has
its own pair. A new service calls all three creations in one migration; any column added to
a mixin since comes with its own migration.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

OUTBOX, INBOX = "outbox", "processed_events"
_OUTBOX_UNSENT = f"ix_{OUTBOX}_unsent"
_INBOX_PRUNING = f"ix_{INBOX}_consumer_processed_at"


def _timestamp(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def create_outbox_table(schema: str) -> None:
    """The outbox table and its partial index of unsent rows (``OutboxMixin``)."""
    op.create_table(
        OUTBOX,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        _timestamp("created_at"),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{OUTBOX}")),
        schema=schema,
    )
    op.create_index(
        _OUTBOX_UNSENT,
        OUTBOX,
        ["created_at"],
        schema=schema,
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def drop_outbox_table(schema: str) -> None:
    op.drop_index(_OUTBOX_UNSENT, table_name=OUTBOX, schema=schema)
    op.drop_table(OUTBOX, schema=schema)


def create_inbox_table(schema: str) -> None:
    """The processed-events table (``InboxMixin``), without its pruning index."""
    op.create_table(
        INBOX,
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        _timestamp("processed_at"),
        sa.PrimaryKeyConstraint("event_id", "consumer", name=op.f(f"pk_{INBOX}")),
        schema=schema,
    )


def drop_inbox_table(schema: str) -> None:
    op.drop_table(INBOX, schema=schema)


def create_inbox_pruning_index(schema: str) -> None:
    """The index pruning reads a consumer's oldest keys by (``prune_inbox``)."""
    op.create_index(_INBOX_PRUNING, INBOX, ["consumer", "processed_at"], schema=schema)


def drop_inbox_pruning_index(schema: str) -> None:
    op.drop_index(_INBOX_PRUNING, table_name=INBOX, schema=schema)


def add_outbox_trace_context(schema: str) -> None:
    """The writing transaction's trace context (``OutboxMixin.trace_context``), NULL when
    tracing is off: the relay sends it in the message's AMQP headers (docs/tracing.md)."""
    op.add_column(
        OUTBOX, sa.Column("trace_context", postgresql.JSONB(), nullable=True), schema=schema
    )


def drop_outbox_trace_context(schema: str) -> None:
    op.drop_column(OUTBOX, "trace_context", schema=schema)
