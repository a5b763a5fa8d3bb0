"""Refunds owed: those the provider could not make when asked, retried by the reconciler.

Revision ID: 3f6a9d2c1b84
Revises: 5b1e9c3d7a20
Created: 2026-12-05 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f6a9d2c1b84"
down_revision: str | None = "5b1e9c3d7a20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    op.create_table(
        "refunds",
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        sa.Column("causation_id", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('owed', 'refunded', 'refused')", name=op.f("ck_refunds_status_known")
        ),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_refunds")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_refunds_owed_next_attempt_at",
        "refunds",
        ["next_attempt_at", "payment_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'owed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_refunds_owed_next_attempt_at", table_name="refunds", schema=SCHEMA)
    op.drop_table("refunds", schema=SCHEMA)
