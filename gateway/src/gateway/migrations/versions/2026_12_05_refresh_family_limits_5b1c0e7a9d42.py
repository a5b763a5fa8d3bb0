"""Refresh families: an absolute lifetime, and a user generation that revokes them all.

``family_created_at`` is the login time of a token's family (copied on every rotation),
backfilled from the family's oldest token; it defaults to the insert time so a gateway of
the release before, still running during a roll-out, can go on storing tokens (expand only). ``session_generation`` (on users and tokens) is
bumped by a promotion or a password reset: a family logged in under an older generation
can no longer refresh.

Revision ID: 5b1c0e7a9d42
Revises: 16f89ec2154f
Created: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1c0e7a9d42"
down_revision: str | None = "16f89ec2154f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "gateway"


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "refresh_tokens",
        sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "refresh_tokens",
        sa.Column(
            "family_created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.execute(
        """
        UPDATE gateway.refresh_tokens AS token
           SET family_created_at = family.created_at
          FROM (SELECT family_id, min(created_at) AS created_at
                  FROM gateway.refresh_tokens GROUP BY family_id) AS family
         WHERE token.family_id = family.family_id
        """
    )


def downgrade() -> None:
    op.drop_column("refresh_tokens", "family_created_at", schema=SCHEMA)
    op.drop_column("refresh_tokens", "session_generation", schema=SCHEMA)
    op.drop_column("users", "session_generation", schema=SCHEMA)
