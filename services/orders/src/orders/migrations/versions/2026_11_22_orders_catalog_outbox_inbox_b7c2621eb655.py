"""Orders, lines, status history, idempotency keys, the price replica, outbox and inbox.

Revision ID: b7c2621eb655
Revises: 6bccdcb189cd
Created: 2026-11-22 02:38:45.730905
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.messaging.tables import (
    create_inbox_table,
    create_outbox_table,
    drop_inbox_table,
    drop_outbox_table,
)

revision: str = "b7c2621eb655"
down_revision: str | None = "6bccdcb189cd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"
STATUSES = (
    "pending",
    "awaiting_payment",
    "confirmed",
    "shipped",
    "delivered",
    "rejected",
    "cancelled",
    "refund_pending",
    "refunded",
)


def _status_column(name: str) -> sa.Column[str]:
    return sa.Column(
        name,
        sa.Enum(
            *STATUSES, name="order_status", native_enum=False, create_constraint=True, length=32
        ),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "catalog_prices",
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("source_occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_catalog_prices")),
        schema=SCHEMA,
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        _status_column("status"),
        sa.Column("total_amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("shipping_address", postgresql.JSONB(), nullable=False),
        sa.Column("payment_token", sa.String(255), nullable=True),
        sa.Column("payment_requests", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("payment_id", sa.Uuid(), nullable=True),
        sa.Column("carrier", sa.String(100), nullable=True),
        sa.Column("tracking_number", sa.String(100), nullable=True),
        sa.Column("sweep_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        schema=SCHEMA,
    )
    op.create_index("ix_orders_user_id_id", "orders", ["user_id", "id"], schema=SCHEMA)
    op.create_index(
        "ix_orders_sweep_due_at",
        "orders",
        ["sweep_due_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("sweep_due_at IS NOT NULL"),
    )
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            [f"{SCHEMA}.orders.id"],
            name=op.f("fk_order_lines_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", "sku", name=op.f("pk_order_lines")),
        schema=SCHEMA,
    )
    op.create_table(
        "order_status_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        _status_column("status"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            [f"{SCHEMA}.orders.id"],
            name=op.f("fk_order_status_history_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_status_history")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_order_status_history_order_id"),
        "order_status_history",
        ["order_id"],
        schema=SCHEMA,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], schema=SCHEMA
    )
    create_outbox_table(SCHEMA)
    create_inbox_table(SCHEMA)


def downgrade() -> None:
    drop_inbox_table(SCHEMA)
    drop_outbox_table(SCHEMA)
    op.drop_table("idempotency_keys", schema=SCHEMA)
    op.drop_table("order_status_history", schema=SCHEMA)
    op.drop_table("order_lines", schema=SCHEMA)
    op.drop_table("orders", schema=SCHEMA)
    op.drop_table("catalog_prices", schema=SCHEMA)
