"""Index the inbox by consumer and processing time, for pruning old keys.

Revision ID: 3a9d41c07e52
Revises: f72be056f1d6
Created: 2026-11-22 06:30:00
"""

from collections.abc import Sequence

from shared.messaging.tables import create_inbox_pruning_index, drop_inbox_pruning_index

revision: str = "3a9d41c07e52"
down_revision: str | None = "f72be056f1d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    create_inbox_pruning_index(SCHEMA)


def downgrade() -> None:
    drop_inbox_pruning_index(SCHEMA)
