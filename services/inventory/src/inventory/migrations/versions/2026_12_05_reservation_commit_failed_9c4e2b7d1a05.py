"""Reservations may end ``commit_failed``: confirmed after they lapsed, the stock gone.

Revision ID: 9c4e2b7d1a05
Revises: 3a9d41c07e52
Created: 2026-12-05 21:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9c4e2b7d1a05"
down_revision: str | None = "3a9d41c07e52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"
BEFORE = "'reserved', 'rejected', 'committed', 'released', 'expired', 'returned', 'cancelled'"


def _status_check(statuses: str) -> None:
    op.drop_constraint(op.f("ck_reservations_status_known"), "reservations", schema=SCHEMA)
    op.create_check_constraint(
        op.f("ck_reservations_status_known"),
        "reservations",
        f"status IN ({statuses})",
        schema=SCHEMA,
    )


def upgrade() -> None:
    _status_check(f"{BEFORE}, 'commit_failed'")


def downgrade() -> None:
    op.execute(
        "UPDATE inventory.reservations SET status = 'expired' WHERE status = 'commit_failed'"
    )
    _status_check(BEFORE)
