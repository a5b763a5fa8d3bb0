"""Stock, ledger and reservation queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.catalog.models import Product
from inventory.catalog.staleness import mark_stale
from inventory.stock.models import (
    MovementKind,
    ReservationStatus,
    StockItem,
    StockMovement,
)
from shared.db import driver_connection
from shared.ids import new_id


@dataclass(frozen=True)
class LockedStock:
    """A stock row locked for this transaction, with what the rules need of its product."""

    item: StockItem
    active: bool
    reorder_point: int


@dataclass(frozen=True)
class Movement:
    sku: str
    kind: MovementKind
    on_hand_delta: int
    reserved_delta: int
    reason: str
    reference: str | None


async def lock_stock(session: AsyncSession, *, skus: Iterable[str]) -> list[LockedStock]:
    """Lock the stock rows of ``skus`` in sku order; unknown skus are simply absent.

    Every statement that locks stock rows (this one and the reservation statements below)
    locks them in sku order, so all take their locks in the same order and two multi-line
    orders can never deadlock: the row lock follows the sort because Postgres locks rows as
    the sorted result is produced.
    """
    wanted = sorted(set(skus))
    if not wanted:
        return []
    statement = (
        select(StockItem, Product.active, Product.reorder_point)
        .join(Product, Product.sku == StockItem.sku)
        .where(StockItem.sku.in_(wanted))
        .order_by(StockItem.sku)
        .with_for_update(of=StockItem)
        # A row read earlier in this session must show the locked, current values.
        .execution_options(populate_existing=True)
    )
    rows = (await session.execute(statement)).all()
    return [LockedStock(item=row[0], active=row[1], reorder_point=row[2]) for row in rows]


async def get_stock(session: AsyncSession, *, sku: str) -> tuple[StockItem, int] | None:
    statement = (
        select(StockItem, Product.reorder_point)
        .join(Product, Product.sku == StockItem.sku)
        .where(StockItem.sku == sku)
    )
    row = (await session.execute(statement)).first()
    return (row[0], int(row[1])) if row is not None else None


async def low_stock_page(
    session: AsyncSession, *, after: str | None, limit: int
) -> Sequence[tuple[StockItem, int]]:
    """Active products whose available stock is at or under their reorder point."""
    statement = (
        select(StockItem, Product.reorder_point)
        .join(Product, Product.sku == StockItem.sku)
        .where(Product.active, StockItem.on_hand - StockItem.reserved <= Product.reorder_point)
        .order_by(StockItem.sku)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(StockItem.sku > after)
    rows = (await session.execute(statement)).all()
    return [(row[0], int(row[1])) for row in rows]


async def record_movements(session: AsyncSession, movements: Sequence[Movement]) -> None:
    if not movements:
        return
    # Every change of a stock level is recorded as a movement: the products' `available`
    # in cached catalog reads is stale once this commits.
    mark_stale(session, {m.sku for m in movements})
    await session.execute(
        insert(StockMovement),
        [
            {
                "id": new_id(),
                "sku": m.sku,
                "kind": m.kind.value,
                "on_hand_delta": m.on_hand_delta,
                "reserved_delta": m.reserved_delta,
                "reason": m.reason,
                "reference": m.reference,
            }
            for m in movements
        ],
    )


# -- the order saga's reservations: fixed SQL on the driver connection ------------------------
#
# The worker's hot path: ORM statements and flushes would cost each step several times the
# CPU (bench/CHANGES.md). These few fixed texts carry the same reads and writes (prepared once
# per connection; rows travel as arrays, so one text serves any number of lines), and a saga
# step sends two or three of them, where a flush would add one UPDATE per stock row. The ORM
# neither sees nor flushes what they write: the reservation paths load no ORM object of these
# tables.


@dataclass
class StockLevel:
    """A stock row locked for this transaction, with what the rules need of its product.

    Read on the driver connection; the rules change it in place and the move statements
    write the change, so it is the row's state as the transaction leaves it.
    """

    sku: str
    on_hand: int
    reserved: int
    low_stock_alerted: bool
    active: bool
    reorder_point: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class LockedLine:
    """A reservation line with its stock row, locked; lines of one sku share the row."""

    order_id: uuid.UUID
    quantity: int
    stock: StockLevel


@dataclass(frozen=True)
class LockedReservation:
    status: ReservationStatus
    lines: list[LockedLine]  # in sku order; empty unless the status asked for its stock


@dataclass(frozen=True)
class StockChange:
    """What one stock row's levels and alarm become: deltas, applied to the locked row."""

    sku: str
    on_hand_delta: int
    reserved_delta: int
    low_stock_alerted: bool


def _level(row: Mapping[str, Any]) -> StockLevel:
    return StockLevel(
        sku=row["sku"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        low_stock_alerted=row["low_stock_alerted"],
        active=row["active"],
        reorder_point=row["reorder_point"],
    )


def _lines(rows: Iterable[Mapping[str, Any]]) -> list[LockedLine]:
    levels: dict[str, StockLevel] = {}
    return [
        LockedLine(
            order_id=row["order_id"],
            quantity=row["quantity"],
            stock=levels.setdefault(row["sku"], _level(row)),
        )
        for row in rows
    ]


# One round trip: the reservation is inserted (the primary key decides, so two deliveries of
# one order racing each other cannot both reserve; a concurrent insert of the same key waits
# and then conflicts), then, only if it was, the stock rows are locked in sku order (Postgres
# locks rows as the sorted result is produced, so every transaction locks stock in the same
# order and two multi-line orders never deadlock). The uncorrelated EXISTS is evaluated once,
# before any stock row is read. The outer join yields one row even when nothing is locked,
# to say whether the claim won.
CLAIM_RESERVATION_LOCKING_STOCK = """
WITH claimed AS (
    INSERT INTO inventory.reservations (order_id, status, expires_at)
    VALUES ($1::uuid, $2::text, now() + $3::interval)
    ON CONFLICT (order_id) DO NOTHING
    RETURNING order_id, expires_at
), locked AS (
    SELECT s.sku, s.on_hand, s.reserved, s.low_stock_alerted, p.active, p.reorder_point
    FROM inventory.stock_items AS s
    JOIN inventory.products AS p ON p.sku = s.sku
    WHERE s.sku = ANY($4::text[]) AND EXISTS (SELECT FROM claimed)
    ORDER BY s.sku
    FOR UPDATE OF s
)
SELECT EXISTS (SELECT FROM claimed) AS claimed, (SELECT expires_at FROM claimed) AS expires_at,
       locked.*
FROM (VALUES (true)) AS one (always)
LEFT JOIN locked ON true
ORDER BY locked.sku
"""


@dataclass(frozen=True)
class ClaimedReservation:
    """A reservation just inserted: its deadline (None without a TTL) and the stock rows
    locked for it, in sku order."""

    expires_at: datetime | None
    levels: list[StockLevel]


async def claim_reservation(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    status: ReservationStatus,
    ttl: timedelta | None,
    skus: Iterable[str] = (),
) -> ClaimedReservation | None:
    """Insert the order's reservation and lock the stock rows of ``skus`` (unknown skus are
    simply absent), in sku order; None, with nothing locked, if the order had one already."""
    db = await driver_connection(session)
    rows = await db.fetch(
        CLAIM_RESERVATION_LOCKING_STOCK, order_id, status.value, ttl, sorted(set(skus))
    )
    if not rows[0]["claimed"]:
        return None
    levels = [_level(row) for row in rows if row["sku"] is not None]
    return ClaimedReservation(expires_at=rows[0]["expires_at"], levels=levels)


# One round trip: the reservation row locked (so a confirmation, a cancellation and the
# sweeper apply one after the other, each seeing the status the previous one left), then,
# only if its status is one of $2, its lines with their stock rows locked in sku order, as
# every stock lock is taken. Lines never change once written, and were committed with the
# reservation row, so the statement's snapshot has them all.
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


# Live reservations past their deadline, locked; rows another sweeper holds are skipped, so
# concurrent sweepers share the work and never release the same reservation twice.
LOCK_DUE_RESERVATIONS = """
SELECT order_id FROM inventory.reservations
WHERE status = $1::text AND expires_at <= now()
ORDER BY expires_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

# The lines of reservations this transaction has locked, with their stock rows locked in sku
# order (the one lock order of stock rows).
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
) -> tuple[list[uuid.UUID], list[LockedLine]]:
    """Up to ``limit`` live reservations past their deadline, oldest deadline first, locked
    (rows another sweeper holds are skipped), with their lines and stock rows locked."""
    db = await driver_connection(session)
    due = await db.fetch(LOCK_DUE_RESERVATIONS, ReservationStatus.RESERVED.value, limit)
    order_ids = [row["order_id"] for row in due]
    if not order_ids:
        return [], []
    return order_ids, _lines(await db.fetch(LOCK_RESERVED_STOCK, order_ids))


# One round trip for a reservation: its lines, the stock rows' reserved quantities and alarms
# (rows locked by the claim), and the ledger entries.
RESERVE_STOCK = """
WITH line AS (
    SELECT * FROM unnest($2::text[], $3::bigint[], $4::boolean[], $5::uuid[])
        AS l(sku, quantity, low_stock_alerted, movement_id)
), levels AS (
    UPDATE inventory.stock_items AS s
    SET reserved = s.reserved + line.quantity,
        low_stock_alerted = line.low_stock_alerted,
        updated_at = now()
    FROM line
    WHERE s.sku = line.sku
), lines AS (
    INSERT INTO inventory.reservation_lines (order_id, sku, quantity)
    SELECT $1::uuid, sku, quantity FROM line
)
INSERT INTO inventory.stock_movements
    (id, sku, kind, on_hand_delta, reserved_delta, reason, reference)
SELECT movement_id, sku, $6::text, 0, quantity, $7::text, $1::uuid::text FROM line
"""


async def reserve_stock(
    session: AsyncSession,
    *,
    order_id: uuid.UUID,
    quantities: Mapping[str, int],
    alerted: Mapping[str, bool],
    reason: str,
) -> None:
    """Reserve ``quantities`` (per sku, rows locked) for the order: its lines, the stock
    levels with their new alarm state, and one ``reservation`` movement per sku."""
    skus = sorted(quantities)
    mark_stale(session, skus)
    db = await driver_connection(session)
    await db.execute(
        RESERVE_STOCK,
        order_id,
        skus,
        [quantities[sku] for sku in skus],
        [alerted[sku] for sku in skus],
        [new_id() for _ in skus],
        MovementKind.RESERVATION.value,
        reason,
    )


async def move_reserved_stock(
    session: AsyncSession,
    *,
    changes: Sequence[StockChange],
    movements: Sequence[Movement],
    order_ids: Sequence[uuid.UUID],
    status: ReservationStatus,
) -> None:
    """Apply ``changes`` (one per sku, rows locked), record ``movements`` and set the status
    of the reservations ``order_ids``, together (``write_run``'s one statement)."""
    await write_run(
        session,
        changes=changes,
        lines=(),
        movements=movements,
        statuses=dict.fromkeys(order_ids, status),
    )


async def set_reservation_status(
    session: AsyncSession, *, order_ids: Sequence[uuid.UUID], status: ReservationStatus
) -> None:
    """Set the status of the (locked) reservations ``order_ids``."""
    await move_reserved_stock(session, changes=(), movements=(), order_ids=order_ids, status=status)


# -- a run of saga events at once: fixed SQL on the driver connection -------------------------
#
# Under load the consumer hands over runs of reservations and confirmations. Three
# statements serve a whole run (claim, lock, write) instead of two per event: every lock is
# taken in the same order as above (reservation rows by order id, then stock rows by sku, in
# one statement each), so two runs never deadlock each other or a single-event path.

# One round trip: the new orders' reservations inserted (the primary key decides, as for one
# order), and the confirmed orders' reservations locked. Claims come first, in order id
# order, like the locks.
CLAIM_AND_LOCK_RESERVATIONS = """
WITH claimed AS (
    INSERT INTO inventory.reservations (order_id, status, expires_at)
    SELECT id, $2::text, now() + $3::interval FROM unnest($1::uuid[]) AS id ORDER BY id
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
# named, locked in sku order (the one lock order of stock rows), each with those lines. The
# lines are looked up order by order (an index probe each), whatever the planner believes of
# the table: `order_id = ANY($2)`, or a plain join, let the generic plan of a table never
# analyzed yet scan every line, a cost growing with the table (seen after a burst of orders).
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
    ttl: timedelta,
    held: Iterable[uuid.UUID],
) -> ClaimedRun:
    """Claim a reservation for each of ``new_orders`` (order id → skus wanted), lock the
    reservations ``held``, and lock every stock row the claims won want or the lines of a
    held reservation in a ``COMMITTABLE`` status hold, with those lines."""
    db = await driver_connection(session)
    reservations = await db.fetch(
        CLAIM_AND_LOCK_RESERVATIONS,
        sorted(new_orders),
        ReservationStatus.RESERVED.value,
        ttl,
        sorted(set(held)),
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
        level = levels[row["sku"]] = _level(row)
        for order_id, quantity in zip(row["line_orders"], row["line_quantities"], strict=True):
            lines.setdefault(order_id, []).append(LockedLine(order_id, quantity, level))
    return ClaimedRun(claimed, statuses, levels, lines)


@dataclass(frozen=True)
class ReservedQuantity:
    """A line of a new reservation, as written to ``reservation_lines``."""

    order_id: uuid.UUID
    sku: str
    quantity: int


# One round trip for a run's effects: the stock rows' levels and alarms (rows locked
# before), the new reservations' lines, the ledger entries and the reservations' statuses.
WRITE_RUN = """
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


async def write_run(
    session: AsyncSession,
    *,
    changes: Sequence[StockChange],
    lines: Sequence[ReservedQuantity],
    movements: Sequence[Movement],
    statuses: Mapping[uuid.UUID, ReservationStatus],
) -> None:
    """Apply ``changes`` (one per sku, rows locked), insert the new reservations' ``lines``,
    record ``movements`` and set the (locked) reservations' ``statuses``, together."""
    mark_stale(session, [c.sku for c in changes])
    db = await driver_connection(session)
    await db.execute(
        WRITE_RUN,
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
