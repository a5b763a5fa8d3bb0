"""Queries on orders: the reads answered to clients, and the machine's lock and write.

No business rules, no transactions. Every move of an order, whatever asked for it (an
action, an event, the sweeper), is read with ``lock`` or ``claim_due_for_sweep`` as a
``saga.OrderState`` and written back with ``save``: fixed SQL on the driver connection,
the same two statements for one order or a consumer's batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from orders.order.models import Order
from orders.saga import STOCK_UNAVAILABLE, HistoryEntry, OrderState, OrderStatus
from shared.contracts import Money
from shared.contracts.orders import OrderedQuantity
from shared.db import driver_connection

# -- reads answered to clients ----------------------------------------------------------------


async def get(*, session: AsyncSession, order_id: uuid.UUID) -> Order | None:
    """The order with its lines and history, in one round trip (joined)."""
    statement = (
        select(Order)
        .where(Order.id == order_id)
        .options(joinedload(Order.lines), joinedload(Order.history))
    )
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


# -- the machine's state, read under the order's row lock -------------------------------------
#
# Through the ORM, the joined load of an order and the flush of its changes would each cost
# several times the CPU of a fixed statement (bench/CHANGES.md), and a reaction is the
# worker's hot path. The lines come as two arrays; of the history, only whether inventory
# holds the order's stock as sold (``saga.stock_committed``: confirmed, and no commit failure
# reported). A scalar subquery, not EXISTS: for several orders the planner may turn an EXISTS
# into one hashed scan of the whole history, whose cost grows with the table. Only the order
# rows are locked; lines never change after the order is placed.
STATE = f"""
SELECT o.id, o.user_id, o.status, o.total_amount, o.currency, o.payment_token, o.payment_id,
       o.payment_requests, o.sweep_due_at, o.reservation_expires_at, o.refund_amount,
       o.refund_currency, o.carrier, o.tracking_number, o.updated_at,
       ARRAY(SELECT l.sku FROM orders.order_lines AS l
             WHERE l.order_id = o.id ORDER BY l.position) AS skus,
       ARRAY(SELECT l.quantity FROM orders.order_lines AS l
             WHERE l.order_id = o.id ORDER BY l.position) AS quantities,
       (SELECT coalesce(bool_or(h.status = '{OrderStatus.CONFIRMED.value}'), false)
               AND NOT coalesce(bool_or(h.status = '{OrderStatus.REFUND_PENDING.value}'
                                        AND h.reason = '{STOCK_UNAVAILABLE}'), false)
        FROM orders.order_status_history AS h
        WHERE h.order_id = o.id) AS stock_committed
FROM orders.orders AS o
"""  # noqa: S608 (constants of the saga, no input)

# Locked in id order, so two transactions locking overlapping sets cannot deadlock; two
# steps for one order apply one after the other, each seeing the status the previous left.
LOCK = STATE + "WHERE o.id = ANY($1::uuid[]) ORDER BY o.id FOR UPDATE OF o"

# Orders waiting past their deadline, each with the trace context it was placed in (what
# the sweeper's events continue); rows another sweeper holds are skipped, so several
# workers share the work without meeting.
CLAIM_DUE = (
    STATE.replace("SELECT o.id,", "SELECT o.trace_context, o.id,", 1)
    + "WHERE o.sweep_due_at IS NOT NULL AND o.sweep_due_at <= $1::timestamptz "
    + "ORDER BY o.sweep_due_at LIMIT $2::integer FOR UPDATE OF o SKIP LOCKED"
)


def _state(row: Any) -> OrderState:
    refund_amount, refund_currency = row["refund_amount"], row["refund_currency"]
    return OrderState(
        id=row["id"],
        user_id=row["user_id"],
        status=OrderStatus(row["status"]),
        total=Money(amount=row["total_amount"], currency=row["currency"]),
        items=[
            OrderedQuantity(sku=sku, quantity=quantity)
            for sku, quantity in zip(row["skus"], row["quantities"], strict=True)
        ],
        payment_token=row["payment_token"],
        payment_id=row["payment_id"],
        payment_requests=row["payment_requests"],
        sweep_due_at=row["sweep_due_at"],
        reservation_expires_at=row["reservation_expires_at"],
        refund=(
            Money(amount=refund_amount, currency=refund_currency)
            if refund_amount is not None and refund_currency is not None
            else None
        ),
        stock_committed=row["stock_committed"],
        carrier=row["carrier"],
        tracking_number=row["tracking_number"],
        updated_at=row["updated_at"],
    )


async def lock(
    *, session: AsyncSession, order_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, OrderState]:
    """The orders under their row locks, for the rest of the transaction, by id; an
    unknown id is absent."""
    db = await driver_connection(session)
    rows = await db.fetch(LOCK, list(order_ids))
    return {row["id"]: _state(row) for row in rows}


async def claim_due_for_sweep(
    *, session: AsyncSession, now: datetime, limit: int
) -> list[tuple[OrderState, dict[str, str] | None]]:
    """Orders waiting past their deadline, oldest deadline first, locked, each with the
    trace context it was placed in (None without one)."""
    db = await driver_connection(session)
    return [(_state(row), row["trace_context"]) for row in await db.fetch(CLAIM_DUE, now, limit)]


@dataclass(frozen=True, slots=True)
class Change:
    """An order's state to write, and the history entry its move appends (if it moved)."""

    state: OrderState
    entry: HistoryEntry | None


# One round trip: every order's final state and every history entry, in the order the
# moves happened (entries are read back by id), the insert fed by the update's RETURNING (a
# data-modifying CTE), so an entry exists exactly when its order row was written.
SAVE = """
WITH written AS (
    UPDATE orders.orders AS o
    SET status = n.status, payment_id = n.payment_id, payment_requests = n.payment_requests,
        sweep_due_at = n.sweep_due_at, payment_token = n.payment_token,
        reservation_expires_at = n.reservation_expires_at, refund_amount = n.refund_amount,
        refund_currency = n.refund_currency, carrier = n.carrier,
        tracking_number = n.tracking_number, updated_at = n.updated_at
    FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::integer[], $5::timestamptz[],
                $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bigint[], $10::text[],
                $11::text[], $12::text[])
        AS n(id, status, payment_id, payment_requests, sweep_due_at, payment_token,
             updated_at, reservation_expires_at, refund_amount, refund_currency, carrier,
             tracking_number)
    WHERE o.id = n.id
    RETURNING o.id
)
INSERT INTO orders.order_status_history (order_id, status, reason, at)
SELECT h.order_id, h.status, h.reason, h.at
FROM unnest($13::uuid[], $14::text[], $15::text[], $16::timestamptz[]) WITH ORDINALITY
    AS h(order_id, status, reason, at, position)
WHERE h.order_id IN (SELECT id FROM written)
ORDER BY h.position
"""


async def save(*, session: AsyncSession, changes: Sequence[Change]) -> None:
    """Write the orders' states and append their history entries.

    The caller holds the row locks (``lock``, ``claim_due_for_sweep``) and passes every
    column already decided: the rules stay in the saga. An order changed twice is written
    once, as its last change left it.
    """
    if not changes:
        return
    final = [change.state for change in {c.state.id: c for c in changes}.values()]
    entries = [(change.state.id, change.entry) for change in changes if change.entry is not None]
    db = await driver_connection(session)
    await db.execute(
        SAVE,
        [state.id for state in final],
        [state.status.value for state in final],
        [state.payment_id for state in final],
        [state.payment_requests for state in final],
        [state.sweep_due_at for state in final],
        [state.payment_token for state in final],
        [state.updated_at for state in final],
        [state.reservation_expires_at for state in final],
        [state.refund.amount if state.refund is not None else None for state in final],
        [state.refund.currency if state.refund is not None else None for state in final],
        [state.carrier for state in final],
        [state.tracking_number for state in final],
        [order_id for order_id, _ in entries],
        [entry.status.value for _, entry in entries],
        [entry.reason for _, entry in entries],
        [entry.at for _, entry in entries],
    )
