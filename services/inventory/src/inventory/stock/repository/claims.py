"""Reservations claimed: a run's new ones inserted and its confirmed ones locked, with the
stock rows they need; a cancellation's tombstone.

The reservation's primary key decides a claim: two deliveries of one order racing each
other cannot both reserve (a concurrent insert of the same key waits, then conflicts).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.stock.models import ReservationStatus
from inventory.stock.rows import LockedLine, StockLevel
from shared.db import driver_connection
from shared.tracing.messaging import row_trace_contexts

# One round trip: the new orders' reservations inserted, each with the trace context of the
# event that asked for it ($5: NULL with tracing off, which unnest pads with NULLs), and the
# confirmed orders' reservations locked. Claims come first, in order id order, like the locks.
CLAIM_AND_LOCK_RESERVATIONS = """
WITH claimed AS (
    INSERT INTO inventory.reservations (order_id, status, expires_at, trace_context)
    SELECT r.id, $2::text, now() + $3::interval, CAST(r.trace_context AS jsonb)
    FROM unnest($1::uuid[], $5::text[]) AS r(id, trace_context) ORDER BY r.id
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id, status, expires_at
), held AS (
    SELECT order_id, status, expires_at FROM inventory.reservations
    WHERE order_id = ANY($4::uuid[])
    ORDER BY order_id
    FOR UPDATE
)
SELECT true AS claimed, order_id, status, expires_at FROM claimed
UNION ALL
SELECT false AS claimed, order_id, status, expires_at FROM held
"""

# One round trip: the stock rows of the skus wanted and of the lines of the reservations
# named, locked in sku order, each with those lines. The lines are looked up order by order
# (an index probe each), whatever the planner believes of the table: `order_id = ANY($2)`,
# or a plain join, let the generic plan of a table never analyzed yet scan every line, a
# cost growing with the table (seen after a burst of orders).
LOCK_STOCK_WITH_LINES = """
WITH line AS (
    SELECT l.order_id, l.sku, l.quantity
    FROM unnest($2::uuid[]) AS r(order_id)
    CROSS JOIN LATERAL (
        SELECT order_id, sku, quantity FROM inventory.reservation_lines
        WHERE order_id = r.order_id
        OFFSET 0  -- kept apart: an index probe per order, never a scan of every line
    ) AS l
), wanted AS (
    SELECT unnest($1::text[]) AS sku
    UNION
    SELECT sku FROM line
)
SELECT s.sku, s.on_hand, s.reserved, s.low_stock_alerted, p.active, p.reorder_point,
       ARRAY(SELECT line.order_id FROM line WHERE line.sku = s.sku ORDER BY line.order_id)
           AS line_orders,
       ARRAY(SELECT line.quantity FROM line WHERE line.sku = s.sku ORDER BY line.order_id)
           AS line_quantities
FROM wanted
JOIN inventory.stock_items AS s ON s.sku = wanted.sku
JOIN inventory.products AS p ON p.sku = s.sku
ORDER BY s.sku
FOR UPDATE OF s
"""

# The statuses a confirmation can commit from: a live reservation, or one the sweeper
# released after its TTL (its stock is taken again if it is still there). Their lines are
# locked with their stock rows.
COMMITTABLE = (ReservationStatus.RESERVED, ReservationStatus.EXPIRED)


@dataclass(frozen=True)
class ClaimedRun:
    """What ``claim_and_lock`` found: the claims won with their deadlines, the statuses of
    the reservations named (locked), and the stock rows locked with the lines of those
    reservations a confirmation can commit."""

    claimed: dict[uuid.UUID, datetime]
    held: dict[uuid.UUID, ReservationStatus]
    levels: dict[str, StockLevel]
    lines: dict[uuid.UUID, list[LockedLine]]  # by order, in sku order


async def claim_and_lock(
    session: AsyncSession,
    *,
    new_orders: Mapping[uuid.UUID, Iterable[str]],
    causes: Mapping[uuid.UUID, uuid.UUID],
    ttl: timedelta,
    held: Iterable[uuid.UUID],
) -> ClaimedRun:
    """Claim a reservation for each of ``new_orders`` (order id → skus wanted; ``causes``:
    order id → id of the event asking, whose trace context the reservation keeps), lock the
    reservations ``held``, and lock every stock row the claims won want or the lines of a
    held reservation in a ``COMMITTABLE`` status hold, with those lines."""
    db = await driver_connection(session)
    order_ids = sorted(new_orders)
    reservations = await db.fetch(
        CLAIM_AND_LOCK_RESERVATIONS,
        order_ids,
        ReservationStatus.RESERVED.value,
        ttl,
        sorted(set(held)),
        # A generator: read (and the ids written out) only with tracing on.
        row_trace_contexts(str(causes[order_id]) for order_id in order_ids),
    )
    claimed = {row["order_id"]: row["expires_at"] for row in reservations if row["claimed"]}
    statuses = {
        row["order_id"]: ReservationStatus(row["status"])
        for row in reservations
        if not row["claimed"]
    }
    wanted = sorted({sku for order_id in claimed for sku in new_orders[order_id]})
    committable = sorted(order_id for order_id, status in statuses.items() if status in COMMITTABLE)
    rows = await db.fetch(LOCK_STOCK_WITH_LINES, wanted, committable)
    levels: dict[str, StockLevel] = {}
    lines: dict[uuid.UUID, list[LockedLine]] = {}
    for row in rows:
        level = levels[row["sku"]] = StockLevel.from_row(row)
        for order_id, quantity in zip(row["line_orders"], row["line_quantities"], strict=True):
            lines.setdefault(order_id, []).append(LockedLine(order_id, quantity, level))
    return ClaimedRun(claimed, statuses, levels, lines)


# A tombstone: a ``cancelled`` reservation with no lines and no deadline, inserted only if
# the order has none. The primary key alone decides against a creation racing it (module
# doc); a tombstone names no stock, so it locks none.
CLAIM_TOMBSTONE = """
INSERT INTO inventory.reservations (order_id, status, expires_at)
VALUES ($1::uuid, $2::text, NULL)
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id
"""


async def claim_tombstone(session: AsyncSession, *, order_id: uuid.UUID) -> bool:
    """Insert a ``cancelled`` reservation for an order that has none yet (its cancellation
    overtook its creation, which will then reserve nothing); whether it was inserted."""
    db = await driver_connection(session)
    claimed = await db.fetchval(CLAIM_TOMBSTONE, order_id, ReservationStatus.CANCELLED.value)
    return claimed is not None
