"""Index the inbox by consumer and processing time, for pruning old keys.

Revision ID: 8c04d6e2a1f7
Revises: 977ef1798179
Created: 2026-11-22 06:30:00
"""

from collections.abc import Sequence

from shared.messaging.tables import create_inbox_pruning_index, drop_inbox_pruning_index

revision: str = "8c04d6e2a1f7"
down_revision: str | None = "977ef1798179"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "payments"


def upgrade() -> None:
    create_inbox_pruning_index(SCHEMA)


def downgrade() -> None:
    drop_inbox_pruning_index(SCHEMA)
