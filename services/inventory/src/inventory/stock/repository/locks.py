"""Reservations locked with their lines and stock rows: one order's, for its cancellation,
and the batch of those past their deadline, for the sweeper."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.stock.models import ReservationStatus
from inventory.stock.rows import LockedLine, StockLevel
from shared.db import driver_connection


@dataclass(frozen=True)
class LockedReservation:
    status: ReservationStatus
    lines: list[LockedLine]  # in sku order; empty unless the status asked for its stock


def _lines(rows: Iterable[Mapping[str, Any]]) -> list[LockedLine]:
    levels: dict[str, StockLevel] = {}
    return [
        LockedLine(
            order_id=row["order_id"],
            quantity=row["quantity"],
            stock=levels.setdefault(row["sku"], StockLevel.from_row(row)),
        )
        for row in rows
    ]


# One round trip: the reservation row locked (so a confirmation, a cancellation and the
# sweeper apply one after the other, each seeing the status the previous one left), then,
# only if its status is one of $2, its lines with their stock rows locked in sku order.
# Lines never change once written, and were committed with the reservation row, so the
# statement's snapshot has them all.
LOCK_RESERVATION_WITH_STOCK = """
WITH reservation AS (
    SELECT order_id, status FROM inventory.reservations WHERE order_id = $1::uuid FOR UPDATE
), locked AS (
    SELECT l.order_id, l.sku, l.quantity,
           s.on_hand, s.reserved, s.low_stock_alerted, p.active, p.reorder_point
    FROM inventory.reservation_lines AS l
    JOIN inventory.stock_items AS s ON s.sku = l.sku
    JOIN inventory.products AS p ON p.sku = s.sku
    WHERE l.order_id = $1::uuid
      AND EXISTS (SELECT FROM reservation WHERE status = ANY($2::text[]))
    ORDER BY s.sku
    FOR UPDATE OF s
)
SELECT reservation.status, locked.*
FROM reservation
LEFT JOIN locked ON true
ORDER BY locked.sku
"""


async def lock_reservation(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    with_stock_when: Iterable[ReservationStatus],
) -> LockedReservation | None:
    """The order's reservation, locked, and when its status is in ``with_stock_when`` its
    lines with their stock rows locked; None if the order has no reservation."""
    db = await driver_connection(session)
    rows = await db.fetch(
        LOCK_RESERVATION_WITH_STOCK, order_id, [status.value for status in with_stock_when]
    )
    if not rows:
        return None
    return LockedReservation(
        status=ReservationStatus(rows[0]["status"]),
        lines=_lines(row for row in rows if row["sku"] is not None),
    )


# Live reservations past their deadline, locked, with the trace context each was made in;
# rows another sweeper holds are skipped, so concurrent sweepers share the work and never
# release the same reservation twice.
LOCK_DUE_RESERVATIONS = """
SELECT order_id, trace_context FROM inventory.reservations
WHERE status = $1::text AND expires_at <= now()
ORDER BY expires_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

# The lines of reservations this transaction has locked, with their stock rows locked in sku
# order.
LOCK_RESERVED_STOCK = """
SELECT l.order_id, l.sku, l.quantity,
       s.on_hand, s.reserved, s.low_stock_alerted, p.active, p.reorder_point
FROM inventory.reservation_lines AS l
JOIN inventory.stock_items AS s ON s.sku = l.sku
JOIN inventory.products AS p ON p.sku = s.sku
WHERE l.order_id = ANY($1::uuid[])
ORDER BY s.sku, l.order_id
FOR UPDATE OF s
"""


async def lock_due_reservations(
    session: AsyncSession, *, limit: int
) -> tuple[dict[uuid.UUID, dict[str, str] | None], list[LockedLine]]:
    """Up to ``limit`` live reservations past their deadline, oldest deadline first, locked
    (rows another sweeper holds are skipped), with their lines and stock rows locked: the
    trace context of each by order id (None without one), in that order, and the lines."""
    db = await driver_connection(session)
    due = await db.fetch(LOCK_DUE_RESERVATIONS, ReservationStatus.RESERVED.value, limit)
    contexts = {row["order_id"]: row["trace_context"] for row in due}
    if not contexts:
        return {}, []
    return contexts, _lines(await db.fetch(LOCK_RESERVED_STOCK, list(contexts)))
