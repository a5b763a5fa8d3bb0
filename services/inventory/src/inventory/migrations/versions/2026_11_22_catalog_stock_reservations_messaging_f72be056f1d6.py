"""Catalog, stock, movement ledger, reservations, and the outbox and inbox tables.

Revision ID: f72be056f1d6
Revises: 8361c8a0e4ca
Created: 2026-11-22 02:36:25.316073
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

revision: str = "f72be056f1d6"
down_revision: str | None = "8361c8a0e4ca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    create_outbox_table(SCHEMA)
    create_inbox_table(SCHEMA)
    op.create_table(
        "products",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("price_amount", sa.BigInteger(), nullable=False),
        sa.Column("price_currency", sa.String(length=3), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("reorder_point", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "sku ~ '^[A-Z0-9][A-Z0-9-]{1,63}$'", name=op.f("ck_products_sku_format")
        ),
        sa.CheckConstraint("price_amount >= 0", name=op.f("ck_products_price_not_negative")),
        sa.CheckConstraint(
            "reorder_point >= 0", name=op.f("ck_products_reorder_point_not_negative")
        ),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_products")),
        schema=SCHEMA,
    )
    op.create_table(
        "stock_items",
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("on_hand", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("reserved", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "low_stock_alerted", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        _timestamp("updated_at"),
        sa.CheckConstraint("on_hand >= 0", name=op.f("ck_stock_items_on_hand_not_negative")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_stock_items_reserved_not_negative")),
        sa.CheckConstraint(
            "reserved <= on_hand", name=op.f("ck_stock_items_reserved_within_on_hand")
        ),
        sa.ForeignKeyConstraint(
            ["sku"], [f"{SCHEMA}.products.sku"], name=op.f("fk_stock_items_sku_products")
        ),
        sa.PrimaryKeyConstraint("sku", name=op.f("pk_stock_items")),
        schema=SCHEMA,
    )
    op.create_table(
        "stock_movements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("on_hand_delta", sa.BigInteger(), nullable=False),
        sa.Column("reserved_delta", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "kind IN ('adjustment', 'reservation', 'release', 'commit', 'return')",
            name=op.f("ck_stock_movements_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["sku"], [f"{SCHEMA}.products.sku"], name=op.f("fk_stock_movements_sku_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_movements")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_stock_movements_sku_created_at"),
        "stock_movements",
        ["sku", "created_at"],
        schema=SCHEMA,
    )
    # The ledger is append-only: the database itself refuses to rewrite history.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.refuse_stock_movement_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'stock_movements is append-only';
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER stock_movements_append_only
        BEFORE UPDATE OR DELETE OR TRUNCATE ON {SCHEMA}.stock_movements
        FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.refuse_stock_movement_change()
        """
    )
    op.create_table(
        "reservations",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "status IN ('reserved', 'rejected', 'committed', 'released', 'expired', 'returned', 'cancelled')",
            name=op.f("ck_reservations_status_known"),
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_reservations")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_reservations_live_expires_at",
        "reservations",
        ["expires_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'reserved'"),
    )
    op.create_table(
        "reservation_lines",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_reservation_lines_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["order_id"],
            [f"{SCHEMA}.reservations.order_id"],
            name=op.f("fk_reservation_lines_order_id_reservations"),
        ),
        sa.ForeignKeyConstraint(
            ["sku"], [f"{SCHEMA}.products.sku"], name=op.f("fk_reservation_lines_sku_products")
        ),
        sa.PrimaryKeyConstraint("order_id", "sku", name=op.f("pk_reservation_lines")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("reservation_lines", schema=SCHEMA)
    op.drop_index("ix_reservations_live_expires_at", table_name="reservations", schema=SCHEMA)
    op.drop_table("reservations", schema=SCHEMA)
    # Dropping the table drops its trigger; the function is a schema object of its own.
    op.drop_table("stock_movements", schema=SCHEMA)
    op.execute(f"DROP FUNCTION {SCHEMA}.refuse_stock_movement_change()")
    op.drop_table("stock_items", schema=SCHEMA)
    op.drop_table("products", schema=SCHEMA)
    drop_inbox_table(SCHEMA)
    drop_outbox_table(SCHEMA)
