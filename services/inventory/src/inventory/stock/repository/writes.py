"""The one write of stock: levels, new reservation lines, ledger entries and reservation
statuses, in one statement."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.products.staleness import mark_stale
from inventory.stock.models import MovementKind, ReservationStatus
from shared.db import driver_connection
from shared.ids import new_id


@dataclass(frozen=True)
class StockChange:
    """What one stock row's levels and alarm become: deltas, applied to the locked row."""

    sku: str
    on_hand_delta: int
    reserved_delta: int
    low_stock_alerted: bool


@dataclass(frozen=True)
class ReservedQuantity:
    """A line of a new reservation, as written to ``reservation_lines``."""

    order_id: uuid.UUID
    sku: str
    quantity: int


@dataclass(frozen=True)
class Movement:
    """A ledger entry: one change of on hand or reserved."""

    sku: str
    kind: MovementKind
    on_hand_delta: int
    reserved_delta: int
    reason: str
    reference: str | None  # order id or admin user id


# One round trip for every effect: the stock rows' levels and alarms (rows locked before),
# the new reservations' lines, the ledger entries and the reservations' statuses.
WRITE_STOCK = """
WITH levels AS (
    UPDATE inventory.stock_items AS s
    SET on_hand = s.on_hand + c.on_hand_delta,
        reserved = s.reserved + c.reserved_delta,
        low_stock_alerted = c.low_stock_alerted,
        updated_at = now()
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::boolean[])
        AS c(sku, on_hand_delta, reserved_delta, low_stock_alerted)
    WHERE s.sku = c.sku
), lines AS (
    INSERT INTO inventory.reservation_lines (order_id, sku, quantity)
    SELECT * FROM unnest($5::uuid[], $6::text[], $7::bigint[])
), ledger AS (
    INSERT INTO inventory.stock_movements
        (id, sku, kind, on_hand_delta, reserved_delta, reason, reference)
    SELECT * FROM unnest($8::uuid[], $9::text[], $10::text[], $11::bigint[], $12::bigint[],
                         $13::text[], $14::text[])
)
UPDATE inventory.reservations AS r SET status = c.status, updated_at = now()
FROM unnest($15::uuid[], $16::text[]) AS c(order_id, status)
WHERE r.order_id = c.order_id
"""


async def write_stock(
    session: AsyncSession,
    *,
    changes: Sequence[StockChange] = (),
    lines: Sequence[ReservedQuantity] = (),
    movements: Sequence[Movement] = (),
    statuses: Mapping[uuid.UUID, ReservationStatus] | None = None,
) -> None:
    """Apply ``changes`` (one per sku, rows locked), insert the new reservations' ``lines``,
    record ``movements`` and set the (locked) reservations' ``statuses``, together."""
    statuses = statuses or {}
    # A stock level changes what catalog reads show (``available``).
    mark_stale(session, [c.sku for c in changes])
    db = await driver_connection(session)
    await db.execute(
        WRITE_STOCK,
        [c.sku for c in changes],
        [c.on_hand_delta for c in changes],
        [c.reserved_delta for c in changes],
        [c.low_stock_alerted for c in changes],
        [line.order_id for line in lines],
        [line.sku for line in lines],
        [line.quantity for line in lines],
        [new_id() for _ in movements],
        [m.sku for m in movements],
        [m.kind.value for m in movements],
        [m.on_hand_delta for m in movements],
        [m.reserved_delta for m in movements],
        [m.reason for m in movements],
        [m.reference for m in movements],
        list(statuses),
        [status.value for status in statuses.values()],
    )
