"""Index the inbox by consumer and processing time, for pruning old keys.

Revision ID: 5e1f82b9c4d3
Revises: b7c2621eb655
Created: 2026-11-22 06:30:00
"""

from collections.abc import Sequence

from shared.messaging.tables import create_inbox_pruning_index, drop_inbox_pruning_index

revision: str = "5e1f82b9c4d3"
down_revision: str | None = "b7c2621eb655"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    create_inbox_pruning_index(SCHEMA)


def downgrade() -> None:
    drop_inbox_pruning_index(SCHEMA)
