"""Payments, the fake provider's memory, and the outbox and inbox of the service.

Revision ID: 977ef1798179
Revises: dbcf5744595e
Created: 2026-11-22 02:38:30.309909
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "977ef1798179"
down_revision: str | None = "dbcf5744595e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("failure_reason", sa.String(length=50), nullable=True),
        sa.Column("refunded_amount", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("provider_charge_id", sa.String(length=100), nullable=True),
        sa.Column("provider_refund_id", sa.String(length=100), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'refunded')",
            name=op.f("ck_payments_status_known"),
        ),
        sa.CheckConstraint(
            "refunded_amount >= 0", name=op.f("ck_payments_refunded_amount_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("order_id", name=op.f("uq_payments_order_id")),
        schema=SCHEMA,
    )
    op.create_index("ix_payments_user_id_id", "payments", ["user_id", "id"], schema=SCHEMA)

    op.create_table(
        "fake_provider_charges",
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("charge_id", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("outcome", sa.String(length=50), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_fake_provider_charges")),
        sa.UniqueConstraint("charge_id", name=op.f("uq_fake_provider_charges_charge_id")),
        schema=SCHEMA,
    )
    op.create_table(
        "fake_provider_refunds",
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("refund_id", sa.String(length=100), nullable=False),
        sa.Column("charge_id", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_fake_provider_refunds")),
        sa.UniqueConstraint("refund_id", name=op.f("uq_fake_provider_refunds_refund_id")),
        schema=SCHEMA,
    )

    # shared.messaging.OutboxMixin
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["created_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("sent_at IS NULL"),
    )

    # shared.messaging.InboxMixin
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column(
            "processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("event_id", "consumer", name=op.f("pk_processed_events")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("processed_events", schema=SCHEMA)
    op.drop_index("ix_outbox_unsent", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("fake_provider_refunds", schema=SCHEMA)
    op.drop_table("fake_provider_charges", schema=SCHEMA)
    op.drop_index("ix_payments_user_id_id", table_name="payments", schema=SCHEMA)
    op.drop_table("payments", schema=SCHEMA)
