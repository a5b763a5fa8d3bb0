"""Forgetting Idempotency-Key records once their retention has passed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from orders.config import OrdersSettings
from orders.order import placement_repository

PRUNE_BATCH = 1000


async def prune_idempotency_keys(
    *, session: AsyncSession, settings: OrdersSettings, now: datetime | None = None
) -> int:
    """Forget keys older than the retention, in bounded batches; the number removed."""
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=settings.idempotency_retention_hours)
    total = 0
    while True:
        async with session.begin():
            removed = await placement_repository.delete_expired_idempotency_records(
                session=session, older_than=cutoff, limit=PRUNE_BATCH
            )
        total += removed
        if removed < PRUNE_BATCH:
            return total
