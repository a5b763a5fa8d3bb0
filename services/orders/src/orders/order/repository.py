"""Queries on orders and idempotency records; no business rules, no transactions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from orders.order.models import IdempotencyRecord, Order
from orders.saga import OrderStatus


async def get(
    *, session: AsyncSession, order_id: uuid.UUID, for_update: bool = False
) -> Order | None:
    # The order with its lines and history in one round trip (joined, not the mapping's
    # two follow-up selects): every saga step and every read loads all three.
    statement = (
        select(Order)
        .where(Order.id == order_id)
        .options(joinedload(Order.lines), joinedload(Order.history))
    )
    if for_update:
        # Every transition locks its order first: two events for one order apply one after
        # the other, each seeing the status the previous one left. Only the order row: the
        # joined rows are on the nullable side of outer joins, which cannot be locked.
        statement = statement.with_for_update(of=Order)
    result = await session.scalars(statement.execution_options(populate_existing=True))
    order: Order | None = result.unique().first()
    return order


async def page(
    *,
    session: AsyncSession,
    user_id: uuid.UUID | None,
    status: OrderStatus | None,
    before: uuid.UUID | None,
    limit: int,
) -> Sequence[Order]:
    """Newest first (ids are time-ordered); ``limit + 1`` rows so the caller knows if more."""
    statement = select(Order).order_by(Order.id.desc()).limit(limit + 1)
    if user_id is not None:
        statement = statement.where(Order.user_id == user_id)
    if status is not None:
        statement = statement.where(Order.status == status)
    if before is not None:
        statement = statement.where(Order.id < before)
    return (await session.scalars(statement)).all()


async def claim_due_for_sweep(
    *, session: AsyncSession, now: datetime, limit: int
) -> Sequence[Order]:
    """Orders waiting past their deadline, locked; rows another worker holds are skipped."""
    statement = (
        select(Order)
        .where(Order.sweep_due_at.is_not(None), Order.sweep_due_at <= now)
        .order_by(Order.sweep_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(statement)).all()


async def try_lock_idempotency_key(*, session: AsyncSession, user_id: uuid.UUID, key: str) -> bool:
    """Take the transaction-scoped lock of one user's key; False if another request holds it."""
    acquired = await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(hashtextextended(:scope, 0))"),
        {"scope": f"orders.idempotency:{user_id}:{key}"},
    )
    return bool(acquired)


async def get_idempotency_record(
    *, session: AsyncSession, user_id: uuid.UUID, key: str
) -> IdempotencyRecord | None:
    return await session.get(IdempotencyRecord, (user_id, key), populate_existing=True)


async def delete_idempotency_record(*, session: AsyncSession, record: IdempotencyRecord) -> None:
    await session.delete(record)
    await session.flush()


async def delete_expired_idempotency_records(
    *, session: AsyncSession, older_than: datetime, limit: int
) -> int:
    doomed = (
        select(IdempotencyRecord.user_id, IdempotencyRecord.key)
        .where(IdempotencyRecord.created_at < older_than)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(IdempotencyRecord).where(
            tuple_(IdempotencyRecord.user_id, IdempotencyRecord.key).in_(doomed)
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
