"""Baseline: the schema is managed by Alembic from here on (version table inside it).

Later revisions add the service's tables; this one creates nothing so that an empty
schema and a migrated-to-baseline schema are the same.

Revision ID: dbcf5744595e
Revises:
Created: 2026-11-22 02:26:55.523280
"""

from collections.abc import Sequence

revision: str = "dbcf5744595e"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
