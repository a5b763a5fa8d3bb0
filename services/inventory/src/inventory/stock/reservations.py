"""Reservations driven by the order saga: reserve, commit, release or return, expire.

``reserve_order``, ``commit_order`` and ``cancel_order`` run inside the caller's transaction:
the event consumer's, which also records the event in the inbox, so an effect and the
record that it happened commit together. ``expire_due_reservations`` is the sweeper's and
owns its transaction.

They are the worker's hot path, so each transaction is a few fixed statements on the driver
connection (``repository``): lock what the decision needs, decide here, write every effect
in one statement, then the events. No ORM object of these tables is loaded on the way.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.events import outbox
from inventory.stock import metrics, repository
from inventory.stock.models import MovementKind, ReservationStatus
from inventory.stock.repository import LockedLine, Movement, StockChange, StockLevel
from inventory.stock.service import low_stock_alarm
from shared.contracts.base import EventPayload
from shared.contracts.inventory import (
    ReservationExpired,
    ReservedLine,
    StockCommitFailed,
    StockLow,
    StockReservationFailed,
    StockReserved,
)
from shared.messaging import Envelope

logger = logging.getLogger(__name__)


class FailureReason(StrEnum):
    OUT_OF_STOCK = "out_of_stock"
    UNKNOWN_SKU = "unknown_sku"
    INACTIVE = "inactive"
    # A confirmation met an expired reservation whose stock was sold meanwhile.
    STOCK_UNAVAILABLE = "stock_unavailable"


# The ledger's reasons for the two ways a confirmation commits stock.
PAID = "paid"
PAID_AFTER_EXPIRY = "paid_after_expiry"


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


def caused_events(cause: Envelope | None, payloads: Iterable[EventPayload]) -> list[Envelope]:
    return [cause.caused(p) if cause is not None else Envelope.new(p) for p in payloads]


def shortfall(
    wanted: dict[str, int], locked: Sequence[StockLevel]
) -> tuple[FailureReason, list[str]] | None:
    """Why the order cannot be reserved, naming every offending sku; None if it can.

    An unknown sku outranks an inactive one, which outranks a shortage: the most permanent
    reason is the most useful to the customer.
    """
    by_sku = {row.sku: row for row in locked}
    unknown = sorted(sku for sku in wanted if sku not in by_sku)
    if unknown:
        return FailureReason.UNKNOWN_SKU, unknown
    inactive = sorted(sku for sku in wanted if not by_sku[sku].active)
    if inactive:
        return FailureReason.INACTIVE, inactive
    short = sorted(sku for sku, quantity in wanted.items() if by_sku[sku].available < quantity)
    if short:
        return FailureReason.OUT_OF_STOCK, short
    return None


def retake_shortfall(lines: Sequence[LockedLine]) -> list[str]:
    """The skus an expired reservation's (locked) lines cannot take again from available
    stock, in sku order; empty when every line can be committed again."""
    needed: Counter[str] = Counter()
    levels: dict[str, StockLevel] = {}
    for line in lines:
        needed[line.stock.sku] += line.quantity
        levels[line.stock.sku] = line.stock
    return sorted(sku for sku, quantity in needed.items() if levels[sku].available < quantity)


def commit_failed(order_id: uuid.UUID, skus: Sequence[str]) -> StockCommitFailed:
    """The event for a confirmation whose expired reservation could not be taken again."""
    logger.warning(
        "order %s confirmed after its reservation expired and %s sold meanwhile: "
        "nothing committed, the order is to be refunded",
        order_id,
        ", ".join(skus),
    )
    metrics.COMMIT_FAILED.inc()
    return StockCommitFailed(
        order_id=order_id, reason=FailureReason.STOCK_UNAVAILABLE.value, skus=list(skus)
    )


def note_retaken(order_id: uuid.UUID) -> None:
    logger.warning("order %s confirmed after its reservation expired: stock taken again", order_id)
    metrics.RETAKEN.inc()


def low_stock_events(levels: Iterable[StockLevel]) -> list[StockLow]:
    """The low-stock rule on rows just changed (in place, still locked): their alarms' new
    state is set on them for the write, and the events due are returned, in sku order."""
    events = []
    for level in sorted(levels, key=lambda level: level.sku):
        level.low_stock_alerted, event = low_stock_alarm(
            sku=level.sku,
            available=level.available,
            reorder_point=level.reorder_point,
            alerted=level.low_stock_alerted,
        )
        if event is not None:
            events.append(event)
    return events


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
    Three statements: claim and lock, the reservation's writes, the events.
    """
    wanted: Counter[str] = Counter()
    for line in lines:
        wanted[line.sku] += line.quantity
    claim = await repository.claim_reservation(
        session, order_id=order_id, status=ReservationStatus.RESERVED, ttl=ttl, skus=wanted
    )
    if claim is None:
        # Created before (a repeat under another event id) or cancelled before it arrived.
        logger.info("order %s already has a reservation; creation ignored", order_id)
        return ReservationOutcome(reserved=False)
    locked = claim.levels

    failure = shortfall(wanted, locked)
    if failure is not None:
        reason, skus = failure
        await repository.set_reservation_status(
            session, order_ids=[order_id], status=ReservationStatus.REJECTED
        )
        failed = StockReservationFailed(order_id=order_id, reason=reason.value, skus=skus)
        await outbox.add_many(session, caused_events(cause, [failed]))
        return ReservationOutcome(reserved=False, reason=reason, skus=tuple(skus))

    for level in locked:
        level.reserved += wanted[level.sku]
    low = low_stock_events(locked)
    await repository.reserve_stock(
        session,
        order_id=order_id,
        quantities=wanted,
        alerted={level.sku: level.low_stock_alerted for level in locked},
        reason="order",
    )
    reserved = StockReserved(
        order_id=order_id,
        items=[ReservedLine(sku=sku, quantity=q) for sku, q in sorted(wanted.items())],
        expires_at=claim.expires_at,
    )
    await outbox.add_many(session, caused_events(cause, [reserved, *low]))
    return ReservationOutcome(reserved=True, skus=tuple(sorted(wanted)))


async def commit_order(
    *, session: AsyncSession, order_id: uuid.UUID, cause: Envelope | None = None
) -> bool:
    """The order is paid: reserved quantities leave on hand. False when nothing committed.

    A reservation the sweeper expired takes its stock again if it is still available (the
    rows locked in sku order, as every stock lock is taken, so this cannot oversell);
    otherwise it ends ``commit_failed`` and ``stock_commit_failed`` tells orders to refund.
    Two statements: lock the reservation with its stock, then the writes.
    """
    reservation = await repository.lock_reservation(
        session, order_id=order_id, with_stock_when=repository.COMMITTABLE
    )
    if reservation is not None and reservation.status == ReservationStatus.EXPIRED:
        return await _commit_expired(session, order_id, reservation.lines, cause)
    if reservation is None or reservation.status != ReservationStatus.RESERVED:
        status = reservation.status if reservation is not None else "absent"
        logger.warning("order %s confirmed but its reservation is %s: ignored", order_id, status)
        return False
    # Available is unchanged by a commit, so the low-stock rule has nothing to say: alarms
    # stay as they are.
    await _move(
        session,
        lines=reservation.lines,
        kind=MovementKind.COMMIT,
        reason=PAID,
        on_hand=-1,
        reserved=-1,
        status=ReservationStatus.COMMITTED,
        order_ids=[order_id],
        apply_low_stock_rule=False,
    )
    return True


async def _commit_expired(
    session: AsyncSession, order_id: uuid.UUID, lines: Sequence[LockedLine], cause: Envelope | None
) -> bool:
    """``commit_order`` for a reservation the sweeper expired: take the stock again, or fail."""
    short = retake_shortfall(lines)
    if short:
        await repository.set_reservation_status(
            session, order_ids=[order_id], status=ReservationStatus.COMMIT_FAILED
        )
        await outbox.add_many(session, caused_events(cause, [commit_failed(order_id, short)]))
        return False
    # Released stock is taken from available again: the low-stock rule applies.
    low = await _move(
        session,
        lines=lines,
        kind=MovementKind.COMMIT,
        reason=PAID_AFTER_EXPIRY,
        on_hand=-1,
        reserved=0,
        status=ReservationStatus.COMMITTED,
        order_ids=[order_id],
    )
    note_retaken(order_id)
    await outbox.add_many(session, caused_events(cause, low))
    return True


async def cancel_order(
    *, session: AsyncSession, order_id: uuid.UUID, cause: Envelope | None = None
) -> ReservationStatus | None:
    """Release a live reservation, or return committed quantities to on hand.

    The new status, or None when there was nothing to undo. A cancellation that overtakes
    its order's creation leaves a tombstone so the late creation reserves nothing; one that
    finds the reservation expired marks it cancelled, so a confirmation arriving after it
    (out of order) takes no stock for an order that is over.
    """
    tombstoned = await repository.claim_reservation(
        session, order_id=order_id, status=ReservationStatus.CANCELLED, ttl=None
    )
    if tombstoned is not None:
        logger.info("order %s cancelled before its creation arrived: tombstone", order_id)
        return None
    reservation = await repository.lock_reservation(
        session,
        order_id=order_id,
        with_stock_when=[ReservationStatus.RESERVED, ReservationStatus.COMMITTED],
    )
    assert reservation is not None  # the claim above found it
    if reservation.status == ReservationStatus.RESERVED:
        # Released stock can only raise available: this re-arms alarms, it never emits.
        low = await _move(
            session,
            lines=reservation.lines,
            kind=MovementKind.RELEASE,
            reason="cancelled",
            on_hand=0,
            reserved=-1,
            status=ReservationStatus.RELEASED,
            order_ids=[order_id],
        )
        await outbox.add_many(session, caused_events(cause, low))
        return ReservationStatus.RELEASED
    if reservation.status == ReservationStatus.COMMITTED:
        low = await _move(
            session,
            lines=reservation.lines,
            kind=MovementKind.RETURN,
            reason="refunded",
            on_hand=1,
            reserved=0,
            status=ReservationStatus.RETURNED,
            order_ids=[order_id],
        )
        await outbox.add_many(session, caused_events(cause, low))
        return ReservationStatus.RETURNED
    if reservation.status == ReservationStatus.EXPIRED:
        await repository.set_reservation_status(
            session, order_ids=[order_id], status=ReservationStatus.CANCELLED
        )
    return None


async def _move(
    session: AsyncSession,
    *,
    lines: Sequence[LockedLine],
    kind: MovementKind,
    reason: str,
    on_hand: int,
    reserved: int,
    status: ReservationStatus,
    order_ids: Sequence[uuid.UUID],
    apply_low_stock_rule: bool = True,
) -> list[StockLow]:
    """Move each (locked) line's quantity, times ``on_hand`` and ``reserved`` (-1, 0 or 1),
    record one movement per line and set the reservations' status, in one statement; the
    ``stock_low`` events due."""
    movements = []
    for line in lines:
        line.stock.on_hand += on_hand * line.quantity
        line.stock.reserved += reserved * line.quantity
        movements.append(
            Movement(
                line.stock.sku,
                kind,
                on_hand * line.quantity,
                reserved * line.quantity,
                reason,
                str(line.order_id),
            )
        )
    # Lines of one sku share their stock row: one change per row, the sum of its lines.
    levels = {line.stock.sku: line.stock for line in lines}
    on_hand_deltas: Counter[str] = Counter()
    reserved_deltas: Counter[str] = Counter()
    for movement in movements:
        on_hand_deltas[movement.sku] += movement.on_hand_delta
        reserved_deltas[movement.sku] += movement.reserved_delta
    low = low_stock_events(levels.values()) if apply_low_stock_rule else []
    changes = [
        StockChange(sku, on_hand_deltas[sku], reserved_deltas[sku], level.low_stock_alerted)
        for sku, level in levels.items()
    ]
    await repository.move_reserved_stock(
        session, changes=changes, movements=movements, order_ids=order_ids, status=status
    )
    return low


async def expire_due_reservations(*, session: AsyncSession, batch_size: int) -> list[uuid.UUID]:
    """Release one batch of reservations past their deadline; the expired order ids.

    Rows are claimed with SKIP LOCKED: sweepers running side by side take disjoint batches,
    and a reservation being committed or cancelled right now is left to that transaction.
    """
    async with session.begin():
        order_ids, lines = await repository.lock_due_reservations(session, limit=batch_size)
        if not order_ids:
            return []
        # Released stock can only raise available: this re-arms alarms, it never emits.
        low = await _move(
            session,
            lines=lines,
            kind=MovementKind.RELEASE,
            reason="expired",
            on_hand=0,
            reserved=-1,
            status=ReservationStatus.EXPIRED,
            order_ids=order_ids,
        )
        expired = [ReservationExpired(order_id=order_id) for order_id in order_ids]
        await outbox.add_many(session, caused_events(None, [*low, *expired]))
    return order_ids
