"""Queries of the payment table; no transaction control and no business rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from payments.payment.models import OwedRefund, Payment, PaymentStatus, RefundStatus


async def get(session: AsyncSession, payment_id: uuid.UUID) -> Payment | None:
    return await session.get(Payment, payment_id, populate_existing=True)


# --- the charge path: fixed SQL on the asyncpg connection -------------------------------------
# A fraction of the CPU an ORM statement would cost (``shared.db.driver_connection``); the
# caller decides the transaction (a lone autocommitted statement, or the consumer's).

_PAYMENT_COLUMNS = """
    id, order_id, user_id, amount, currency, status, failure_reason, refunded_amount,
    provider_charge_id, provider_refund_id, created_at, updated_at
"""

# Each order's payment: inserted as pending now, or the one it already has; one statement.
# On conflict the existing row is locked and returned as it is at the latest commit, not as
# the statement's snapshot saw it: a request arriving while the reconciler holds the payment
# waits, then finds it settled and does not charge. A pending payment's ``updated_at``
# becomes the time of this, its latest attempt, which the reconciler's age counts from: it
# leaves alone a payment that a request is charging now. (A settled one keeps its time; the
# row is still rewritten, once per duplicate request.) Rows go in order id order, so that
# two of these statements over the same orders lock them in the same order and cannot
# deadlock. A new payment keeps its request's trace context, which the reconciler's events
# continue.
RECORD_ATTEMPTS = f"""
INSERT INTO payments.payments AS p
    (id, order_id, user_id, amount, currency, status, trace_context)
SELECT id, order_id, user_id, amount, currency, 'pending', CAST(trace_context AS jsonb)
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[])
    AS a(id, order_id, user_id, amount, currency, trace_context)
ORDER BY order_id
ON CONFLICT (order_id) DO UPDATE
SET updated_at = CASE WHEN p.status = 'pending' THEN now() ELSE p.updated_at END
RETURNING {_PAYMENT_COLUMNS}
"""  # noqa: S608 (a constant column list, no input)

# Pending payments moved to their outcomes; a payment no longer pending yields no row, nor
# one whose outcome is for a sole attempt while another was recorded (a later attempt moves
# updated_at past created_at: RECORD_ATTEMPTS).
SETTLE_PENDING = """
UPDATE payments.payments AS p
SET status = s.status, failure_reason = s.failure_reason,
    provider_charge_id = s.provider_charge_id, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[])
    AS s(id, status, failure_reason, provider_charge_id, sole_attempt_only)
WHERE p.id = s.id AND p.status = 'pending'
    AND (NOT s.sole_attempt_only OR p.updated_at = p.created_at)
RETURNING p.id, p.order_id, p.user_id, p.amount, p.currency, p.status, p.failure_reason,
    p.refunded_amount, p.provider_charge_id, p.provider_refund_id, p.created_at, p.updated_at
"""


@dataclass(frozen=True, slots=True)
class Attempt:
    """A charge attempt to record: the payment an order gets unless it has one already."""

    payment_id: uuid.UUID
    order_id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    currency: str
    trace_context: str | None = None  # the request's, as stored (shared.tracing.messaging)


async def record_attempts(
    db: asyncpg.Connection, attempts: Sequence[Attempt]
) -> dict[uuid.UUID, Payment]:
    """Each order's payment by order id, inserted as pending unless the order has one.

    The orders must be distinct. Run alone (autocommitted), the statement is atomic: the
    pending payments are committed when it returns. Detached ``Payment`` objects come back,
    as after a committed session.
    """
    # Always a row per order: the insert, or the existing one updated. A concurrent insert
    # of one of these orders still in flight makes ours wait for it and then update it.
    rows = await db.fetch(
        RECORD_ATTEMPTS,
        [attempt.payment_id for attempt in attempts],
        [attempt.order_id for attempt in attempts],
        [attempt.user_id for attempt in attempts],
        [attempt.amount for attempt in attempts],
        [attempt.currency for attempt in attempts],
        [attempt.trace_context for attempt in attempts],
    )
    payments = {payment.order_id: payment for payment in map(_payment, rows)}
    assert len(payments) == len(attempts), "an attempt's payment was neither inserted nor found"
    return payments


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome a pending payment moves to."""

    payment_id: uuid.UUID
    status: PaymentStatus
    failure_reason: str | None
    provider_charge_id: str | None
    sole_attempt_only: bool = False  # only if no other attempt was recorded (settlement.Answer)


async def settle_pending(
    db: asyncpg.Connection, settlements: Sequence[Settlement]
) -> dict[uuid.UUID, Payment]:
    """Move pending payments to their outcomes; the moved ones by payment id. A payment
    missing from the answer was no longer pending.

    The status condition is what makes a concurrent second settlement a no-op: it waits on
    the row lock, then finds the payment settled. Of one payment given twice, one outcome is
    taken and the other finds nothing pending.
    """
    rows = await db.fetch(
        SETTLE_PENDING,
        [settlement.payment_id for settlement in settlements],
        [settlement.status.value for settlement in settlements],
        [settlement.failure_reason for settlement in settlements],
        [settlement.provider_charge_id for settlement in settlements],
        [settlement.sole_attempt_only for settlement in settlements],
    )
    return {payment.id: payment for payment in map(_payment, rows)}


# Pending payments untouched since before the cutoff, after an (updated_at, id) cursor,
# locked for the caller's transaction, with the trace context each was requested in; rows
# another transaction holds are skipped.
CLAIM_STALE_PENDING = f"""
SELECT {_PAYMENT_COLUMNS}, trace_context
FROM payments.payments
WHERE status = 'pending' AND updated_at < $1 AND (updated_at, id) > ($2, $3)
ORDER BY updated_at, id
LIMIT $4
FOR UPDATE SKIP LOCKED
"""  # noqa: S608 (a constant column list, no input)

# The cursor before every row: a pass starts here.
CURSOR_START: tuple[datetime, uuid.UUID] = (datetime(1, 1, 1, tzinfo=UTC), uuid.UUID(int=0))


async def claim_stale_pending(
    db: asyncpg.Connection,
    *,
    untouched_since: datetime,
    after: tuple[datetime, uuid.UUID],
    limit: int,
) -> list[Payment]:
    """Lock up to ``limit`` payments pending since before ``untouched_since``, oldest first,
    after the cursor ``after`` (``CURSOR_START``, or the last payment of the batch before).

    SKIP LOCKED shares the work: reconcilers running at once take disjoint batches, and one
    never waits on a payment a consumer is settling. The cursor lets a pass move on past the
    payments it left pending (provider unavailable) instead of taking them again.
    """
    rows = await db.fetch(CLAIM_STALE_PENDING, untouched_since, *after, limit)
    return [_payment(row) for row in rows]


def _payment(row: asyncpg.Record) -> Payment:
    """A detached ``Payment`` holding one row of ``_PAYMENT_COLUMNS``."""
    return Payment(**dict(row.items()))


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


# --- refunds owed ----------------------------------------------------------------------------


async def get_for_refund(
    session: AsyncSession, payment_id: uuid.UUID
) -> tuple[Payment | None, RefundStatus | None]:
    """The payment, and where a record of its refund stands (None without one), in one
    round trip."""
    row = (
        await session.execute(
            select(Payment, OwedRefund.status)
            .outerjoin(OwedRefund, OwedRefund.payment_id == Payment.id)
            .where(Payment.id == payment_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        return None, None
    payment, status = row
    return payment, RefundStatus(status) if status is not None else None


async def owe_refund(
    session: AsyncSession,
    *,
    payment_id: uuid.UUID,
    next_attempt_at: datetime,
    error: str,
    correlation_id: str | None,
    causation_id: str | None,
) -> None:
    """Record the payment's refund as owed after a first failed attempt, unless a record of
    it exists already (owed since an earlier request: its schedule is kept)."""
    await session.execute(
        insert(OwedRefund)
        .values(
            payment_id=payment_id,
            status=RefundStatus.OWED.value,
            attempts=1,
            next_attempt_at=next_attempt_at,
            last_error=error,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        .on_conflict_do_nothing(index_elements=[OwedRefund.payment_id])
    )


async def refuse_refund(
    session: AsyncSession,
    *,
    payment_id: uuid.UUID,
    error: str,
    correlation_id: str | None,
    causation_id: str | None,
) -> None:
    """Record that the provider refused the payment's refund for good."""
    statement = insert(OwedRefund).values(
        payment_id=payment_id,
        status=RefundStatus.REFUSED.value,
        attempts=1,
        last_error=error,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[OwedRefund.payment_id],
            set_={
                "status": RefundStatus.REFUSED.value,
                "attempts": OwedRefund.attempts + 1,
                "next_attempt_at": None,
                "last_error": error,
                "updated_at": func.now(),
            },
        )
    )


async def close_owed_refund(session: AsyncSession, *, payment_id: uuid.UUID) -> None:
    """The payment's refund is made: a record of it as owed (or refused, then asked for
    again and made) is closed, so it is neither retried nor counted any more."""
    await session.execute(
        update(OwedRefund)
        .where(
            OwedRefund.payment_id == payment_id,
            OwedRefund.status != RefundStatus.REFUNDED.value,
        )
        .values(status=RefundStatus.REFUNDED.value, next_attempt_at=None, updated_at=func.now())
    )


async def claim_due_refunds(
    session: AsyncSession, *, due_by: datetime, limit: int
) -> list[tuple[OwedRefund, Payment]]:
    """Lock up to ``limit`` owed refunds due by ``due_by``, the earliest due first, each with
    its payment (not locked: recording the refund is conditional on the payment's status).

    SKIP LOCKED shares the work: reconcilers running at once take disjoint batches.
    """
    statement = (
        select(OwedRefund, Payment)
        .join(Payment, Payment.id == OwedRefund.payment_id)
        .where(OwedRefund.status == RefundStatus.OWED.value, OwedRefund.next_attempt_at <= due_by)
        .order_by(OwedRefund.next_attempt_at, OwedRefund.payment_id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OwedRefund)
        .execution_options(populate_existing=True)
    )
    return [(owed, payment) for owed, payment in (await session.execute(statement)).all()]


@dataclass(frozen=True, slots=True)
class RefundBacklog:
    owed: int
    oldest_owed_since: datetime | None
    refused: int


async def refund_backlog(session: AsyncSession) -> RefundBacklog:
    """How many refunds are owed (and since when the oldest) and how many were refused."""
    owed = OwedRefund.status == RefundStatus.OWED.value
    refused = OwedRefund.status == RefundStatus.REFUSED.value
    row = (
        await session.execute(
            select(
                func.count().filter(owed),
                func.min(OwedRefund.created_at).filter(owed),
                func.count().filter(refused),
            ).where(OwedRefund.status != RefundStatus.REFUNDED.value)
        )
    ).one()
    return RefundBacklog(owed=row[0], oldest_owed_since=row[1], refused=row[2])


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
