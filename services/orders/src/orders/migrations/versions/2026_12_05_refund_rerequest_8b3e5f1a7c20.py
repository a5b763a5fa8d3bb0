"""Orders remember what their refund asks for, and the sweeper watches refund_pending orders.

The sweeper asks for the refund of an order left in ``refund_pending`` again (its
``payment_refunded`` may have been lost): the request repeats the amount of the first one,
kept in ``refund_amount``/``refund_currency``. Orders already waiting for a refund are made
due at once, so a refund announcement lost before this revision is asked for again; their
amount is unknown here (NULL), and the sweeper then asks for the order's total (payments
refunds the captured amount whatever a request says).

Revision ID: 8b3e5f1a7c20
Revises: 4d8f6a2c9e17
Created: 2026-12-05 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8b3e5f1a7c20"
down_revision: str | None = "4d8f6a2c9e17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.add_column(
        "orders", sa.Column("refund_amount", sa.BigInteger(), nullable=True), schema=SCHEMA
    )
    op.add_column(
        "orders", sa.Column("refund_currency", sa.String(length=3), nullable=True), schema=SCHEMA
    )
    op.execute(
        "UPDATE orders.orders SET sweep_due_at = now() "
        "WHERE status = 'refund_pending' AND sweep_due_at IS NULL"
    )


def downgrade() -> None:
    # As the previous code leaves them: only orders waiting on inventory or a charge are due.
    op.execute("UPDATE orders.orders SET sweep_due_at = NULL WHERE status = 'refund_pending'")
    op.drop_column("orders", "refund_currency", schema=SCHEMA)
    op.drop_column("orders", "refund_amount", schema=SCHEMA)
