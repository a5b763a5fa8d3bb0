"""Payments, the fake provider's memory, and the outbox and inbox of the service.

Revision ID: 977ef1798179
Revises: dbcf5744595e
Created: 2026-11-22 02:38:30.309909
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.messaging.tables import (
    create_inbox_table,
    create_outbox_table,
    drop_inbox_table,
    drop_outbox_table,
)

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

    create_outbox_table(SCHEMA)
    create_inbox_table(SCHEMA)


def downgrade() -> None:
    drop_inbox_table(SCHEMA)
    drop_outbox_table(SCHEMA)
    op.drop_table("fake_provider_refunds", schema=SCHEMA)
    op.drop_table("fake_provider_charges", schema=SCHEMA)
    op.drop_index("ix_payments_user_id_id", table_name="payments", schema=SCHEMA)
    op.drop_table("payments", schema=SCHEMA)
