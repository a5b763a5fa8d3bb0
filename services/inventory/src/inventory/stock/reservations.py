"""Reservations driven by the order saga: reserve, commit, release or return, expire.

``reserve_order``, ``commit_order`` and ``cancel_order`` run inside the caller's transaction:
the event consumer's, which also records the event in the inbox, so an effect and the
record that it happened commit together. ``expire_due_reservations`` is the sweeper's and
owns its transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.events import outbox
from inventory.stock import repository
from inventory.stock.models import MovementKind, ReservationStatus
from inventory.stock.repository import LockedStock, Movement
from inventory.stock.service import low_stock_events
from shared.contracts.base import EventPayload
from shared.contracts.inventory import (
    ReservationExpired,
    ReservedLine,
    StockReservationFailed,
    StockReserved,
)
from shared.messaging import Envelope

logger = logging.getLogger(__name__)


class FailureReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    UNKNOWN_SKU = "unknown_sku"
    INACTIVE = "inactive"


@dataclass(frozen=True)
class ReservationOutcome:
    """What ``reserve_order`` decided; ``reserved`` False with no reason means a repeat."""

    reserved: bool
    reason: FailureReason | None = None
    skus: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int


def _emit(cause: Envelope | None, payloads: Iterable[EventPayload]) -> list[Envelope]:
    return [cause.caused(p) if cause is not None else Envelope.new(p) for p in payloads]


def _shortfall(
    wanted: dict[str, int], locked: Sequence[LockedStock]
) -> tuple[FailureReason, list[str]] | None:
    """Why the order cannot be reserved, naming every offending sku; None if it can.

    An unknown sku outranks an inactive one, which outranks a shortage: the most permanent
    reason is the most useful to the customer.
    """
    by_sku = {row.item.sku: row for row in locked}
    unknown = sorted(sku for sku in wanted if sku not in by_sku)
    if unknown:
        return FailureReason.UNKNOWN_SKU, unknown
    inactive = sorted(sku for sku in wanted if not by_sku[sku].active)
    if inactive:
        return FailureReason.INACTIVE, inactive
    short = sorted(
        sku
        for sku, quantity in wanted.items()
        if by_sku[sku].item.on_hand - by_sku[sku].item.reserved < quantity
    )
    if short:
        return FailureReason.OUT_OF_STOCK, short
    return None


async def reserve_order(
    *,
    session: AsyncSession,
    order_id: uuid.UUID,
    lines: Sequence[OrderLine],
    ttl: timedelta,
    cause: Envelope | None = None,
) -> ReservationOutcome:
    """Reserve every line of the order or none, and say so with an event.

    The stock rows are locked in sku order, checked, then updated; whatever the number of
    concurrent orders, each sees the stock the previous one left, so none oversells.
    """
    wanted: Counter[str] = Counter()
    for line in lines:
        wanted[line.sku] += line.quantity
    claimed = await repository.claim_reservation(
        session, order_id=order_id, status=ReservationStatus.RESERVED, ttl=ttl
    )
    if not claimed:
        # Created before (a repeat under another event id) or cancelled before it arrived.
        logger.info("order %s already has a reservation; creation ignored", order_id)
        return ReservationOutcome(reserved=False)

    locked = await repository.lock_stock(session, skus=wanted)
    failure = _shortfall(wanted, locked)
    if failure is not None:
        reason, skus = failure
        await repository.set_reservation_status(
            session, order_ids=[order_id], status=ReservationStatus.REJECTED
        )
        failed = StockReservationFailed(order_id=order_id, reason=reason.value, skus=skus)
        await outbox.add_many(session, _emit(cause, [failed]))
        return ReservationOutcome(reserved=False, reason=reason, skus=tuple(skus))

    movements = []
    for row in locked:
        quantity = wanted[row.item.sku]
        row.item.reserved += quantity
        row.item.updated_at = func.now()
        movements.append(
            Movement(row.item.sku, MovementKind.RESERVATION, 0, quantity, "order", str(order_id))
        )
    await repository.add_reservation_lines(session, order_id=order_id, quantities=dict(wanted))
    await repository.record_movements(session, movements)
    reserved = StockReserved(
        order_id=order_id,
        items=[ReservedLine(sku=sku, quantity=q) for sku, q in sorted(wanted.items())],
    )
    await outbox.add_many(session, _emit(cause, [reserved, *low_stock_events(locked)]))
    return ReservationOutcome(reserved=True, skus=tuple(sorted(wanted)))


async def commit_order(
    *, session: AsyncSession, order_id: uuid.UUID, cause: Envelope | None = None
) -> bool:
    """The order is paid: reserved quantities leave on hand. False when nothing was live."""
    reservation = await repository.lock_reservation(session, order_id=order_id)
    if reservation is None or reservation.status != ReservationStatus.RESERVED:
        status = reservation.status if reservation is not None else "absent"
        logger.warning("order %s confirmed but its reservation is %s: ignored", order_id, status)
        return False
    lines = await repository.reservation_lines(session, order_ids=[order_id])
    quantities = {line.sku: line.quantity for line in lines}
    locked = await repository.lock_stock(session, skus=quantities)
    movements = []
    for row in locked:
        quantity = quantities[row.item.sku]
        row.item.on_hand -= quantity
        row.item.reserved -= quantity
        row.item.updated_at = func.now()
        movements.append(
            Movement(row.item.sku, MovementKind.COMMIT, -quantity, -quantity, "paid", str(order_id))
        )
    await repository.record_movements(session, movements)
    await repository.set_reservation_status(
        session, order_ids=[order_id], status=ReservationStatus.COMMITTED
    )
    # Available is unchanged by a commit, so the low-stock rule has nothing to say.
    return True


async def cancel_order(
    *, session: AsyncSession, order_id: uuid.UUID, cause: Envelope | None = None
) -> ReservationStatus | None:
    """Release a live reservation, or return committed quantities to on hand.

    The new status, or None when there was nothing to undo. A cancellation that overtakes
    its order's creation leaves a tombstone so the late creation reserves nothing.
    """
    tombstoned = await repository.claim_reservation(
        session, order_id=order_id, status=ReservationStatus.CANCELLED, ttl=None
    )
    if tombstoned:
        logger.info("order %s cancelled before its creation arrived: tombstone", order_id)
        return None
    reservation = await repository.lock_reservation(session, order_id=order_id)
    assert reservation is not None  # the claim above found it
    if reservation.status == ReservationStatus.RESERVED:
        await _release(session, order_ids=[order_id], reason="cancelled", cause=cause)
        await repository.set_reservation_status(
            session, order_ids=[order_id], status=ReservationStatus.RELEASED
        )
        return ReservationStatus.RELEASED
    if reservation.status == ReservationStatus.COMMITTED:
        await _return(session, order_id=order_id, cause=cause)
        await repository.set_reservation_status(
            session, order_ids=[order_id], status=ReservationStatus.RETURNED
        )
        return ReservationStatus.RETURNED
    return None


async def _release(
    session: AsyncSession,
    *,
    order_ids: Sequence[uuid.UUID],
    reason: str,
    cause: Envelope | None,
) -> None:
    """Give the reserved quantities of these (locked, live) reservations back to available."""
    lines = await repository.reservation_lines(session, order_ids=order_ids)
    rows = await repository.lock_stock(session, skus={line.sku for line in lines})
    locked = {row.item.sku: row for row in rows}
    movements = []
    for line in lines:
        item = locked[line.sku].item
        item.reserved -= line.quantity
        item.updated_at = func.now()
        movements.append(
            Movement(line.sku, MovementKind.RELEASE, 0, -line.quantity, reason, str(line.order_id))
        )
    await repository.record_movements(session, movements)
    # Released stock can only raise available: this re-arms alarms, it never emits.
    await outbox.add_many(session, _emit(cause, low_stock_events(list(locked.values()))))


async def _return(session: AsyncSession, *, order_id: uuid.UUID, cause: Envelope | None) -> None:
    lines = await repository.reservation_lines(session, order_ids=[order_id])
    locked = await repository.lock_stock(session, skus={line.sku for line in lines})
    quantities = {line.sku: line.quantity for line in lines}
    movements = []
    for row in locked:
        quantity = quantities[row.item.sku]
        row.item.on_hand += quantity
        row.item.updated_at = func.now()
        movements.append(
            Movement(row.item.sku, MovementKind.RETURN, quantity, 0, "refunded", str(order_id))
        )
    await repository.record_movements(session, movements)
    await outbox.add_many(session, _emit(cause, low_stock_events(locked)))


async def expire_due_reservations(*, session: AsyncSession, batch_size: int) -> list[uuid.UUID]:
    """Release one batch of reservations past their deadline; the expired order ids.

    Rows are claimed with SKIP LOCKED: sweepers running side by side take disjoint batches,
    and a reservation being committed or cancelled right now is left to that transaction.
    """
    async with session.begin():
        due = await repository.lock_due_reservations(session, limit=batch_size)
        order_ids = [reservation.order_id for reservation in due]
        if not order_ids:
            return []
        await _release(session, order_ids=order_ids, reason="expired", cause=None)
        await repository.set_reservation_status(
            session, order_ids=order_ids, status=ReservationStatus.EXPIRED
        )
        expired = [ReservationExpired(order_id=order_id) for order_id in order_ids]
        await outbox.add_many(session, _emit(None, expired))
    return order_ids
