"""Stock given back: a cancellation releases a live reservation or returns a committed one;
the sweeper releases the reservations past their deadline.

``cancel_order`` runs inside the consumer's transaction (``runs.apply_steps`` hands it each
cancellation), so its effects and the inbox record of the event commit together;
``expire_due_reservations`` is the sweeper's and owns its transaction. Each locks what the
decision needs, decides, and writes every effect in one statement, then the events.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.events import outbox
from inventory.stock.models import MovementKind, ReservationStatus
from inventory.stock.repository import claims, locks
from inventory.stock.repository.writes import Movement, StockChange, write_stock
from inventory.stock.rows import LockedLine
from inventory.stock.rules import low_stock_events
from shared.contracts.inventory import ReservationExpired, StockLow
from shared.messaging import Envelope
from shared.tracing.messaging import JobTraces

logger = logging.getLogger(__name__)


async def cancel_order(
    *, session: AsyncSession, order_id: uuid.UUID, cause: Envelope
) -> ReservationStatus | None:
    """Release a live reservation, or return committed quantities to on hand.

    The new status, or None when there was nothing to undo. A cancellation that overtakes
    its order's creation leaves a tombstone so the late creation reserves nothing; one that
    finds the reservation expired marks it cancelled, so a confirmation arriving after it
    (out of order) takes no stock for an order that is over.
    """
    if await claims.claim_tombstone(session, order_id=order_id):
        logger.info("order %s cancelled before its creation arrived: tombstone", order_id)
        return None
    reservation = await locks.lock_reservation(
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
        await outbox.add_many(session, [cause.caused(event) for event in low])
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
        await outbox.add_many(session, [cause.caused(event) for event in low])
        return ReservationStatus.RETURNED
    if reservation.status == ReservationStatus.EXPIRED:
        await write_stock(session, statuses={order_id: ReservationStatus.CANCELLED})
    return None


async def expire_due_reservations(*, session: AsyncSession, batch_size: int) -> list[uuid.UUID]:
    """Release one batch of reservations past their deadline; the expired order ids.

    Rows are claimed with SKIP LOCKED: sweepers running side by side take disjoint batches,
    and a reservation being committed or cancelled right now is left to that transaction.
    """
    async with session.begin():
        contexts, lines = await locks.lock_due_reservations(session, limit=batch_size)
        if not contexts:
            return []
        order_ids = list(contexts)
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
        expired = [Envelope.new(ReservationExpired(order_id=order_id)) for order_id in order_ids]
        # Each order's reservation_expired continues the trace its reservation was made in.
        with JobTraces("expire reservation") as traces:
            for event, order_id in zip(expired, order_ids, strict=True):
                traces.emit(contexts[order_id], [event])
            await outbox.add_many(session, [*(Envelope.new(event) for event in low), *expired])
    return order_ids


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
    low = low_stock_events(levels.values())
    changes = [
        StockChange(sku, on_hand_deltas[sku], reserved_deltas[sku], level.low_stock_alerted)
        for sku, level in levels.items()
    ]
    await write_stock(
        session, changes=changes, movements=movements, statuses=dict.fromkeys(order_ids, status)
    )
    return low
