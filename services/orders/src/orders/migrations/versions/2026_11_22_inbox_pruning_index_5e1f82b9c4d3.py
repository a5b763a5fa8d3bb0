"""Index the inbox by consumer and processing time, for pruning old keys.

Revision ID: 5e1f82b9c4d3
Revises: b7c2621eb655
Created: 2026-11-22 06:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5e1f82b9c4d3"
down_revision: str | None = "b7c2621eb655"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    op.create_index(
        "ix_processed_events_consumer_processed_at",
        "processed_events",
        ["consumer", "processed_at"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_processed_events_consumer_processed_at", table_name="processed_events", schema=SCHEMA
    )
