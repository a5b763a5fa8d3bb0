"""Queries of the payment table; no transaction control and no business rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payments.payment.models import Payment, PaymentStatus


async def insert_pending_once(
    session: AsyncSession,
    *,
    payment_id: uuid.UUID,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    amount: int,
    currency: str,
) -> None:
    """Insert the order's pending payment unless the order already has one."""
    statement = (
        insert(Payment)
        .values(
            id=payment_id,
            order_id=order_id,
            user_id=user_id,
            amount=amount,
            currency=currency,
            status=PaymentStatus.PENDING.value,
        )
        .on_conflict_do_nothing(index_elements=[Payment.order_id])
    )
    await session.execute(statement)


async def get(session: AsyncSession, payment_id: uuid.UUID) -> Payment | None:
    return await session.get(Payment, payment_id, populate_existing=True)


async def get_by_order(session: AsyncSession, order_id: uuid.UUID) -> Payment | None:
    statement = (
        select(Payment)
        .where(Payment.order_id == order_id)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(statement)


async def settle_pending(
    session: AsyncSession,
    *,
    payment_id: uuid.UUID,
    status: PaymentStatus,
    failure_reason: str | None,
    provider_charge_id: str | None,
) -> Payment | None:
    """Move a pending payment to its outcome; None when it was no longer pending.

    The status condition is what makes a concurrent second settlement a no-op: it waits on
    the row lock, then finds the payment settled.
    """
    statement = (
        update(Payment)
        .where(Payment.id == payment_id, Payment.status == PaymentStatus.PENDING.value)
        .values(
            status=status.value,
            failure_reason=failure_reason,
            provider_charge_id=provider_charge_id,
            updated_at=func.now(),
        )
        .returning(Payment)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(statement)


async def mark_refunded(
    session: AsyncSession, *, payment_id: uuid.UUID, refunded_amount: int, provider_refund_id: str
) -> Payment | None:
    """Record the refund of a succeeded payment; None when it was not (or no longer) so."""
    statement = (
        update(Payment)
        .where(Payment.id == payment_id, Payment.status == PaymentStatus.SUCCEEDED.value)
        .values(
            status=PaymentStatus.REFUNDED.value,
            refunded_amount=refunded_amount,
            provider_refund_id=provider_refund_id,
            updated_at=func.now(),
        )
        .returning(Payment)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(statement)


async def page(
    session: AsyncSession,
    *,
    user_id: uuid.UUID | None,
    order_id: uuid.UUID | None,
    before: uuid.UUID | None,
    limit: int,
) -> Sequence[Payment]:
    """Newest first (ids are time-ordered), after the cursor; ``user_id`` None means all."""
    statement = select(Payment).order_by(Payment.id.desc()).limit(limit)
    if user_id is not None:
        statement = statement.where(Payment.user_id == user_id)
    if order_id is not None:
        statement = statement.where(Payment.order_id == order_id)
    if before is not None:
        statement = statement.where(Payment.id < before)
    return (await session.scalars(statement)).all()
