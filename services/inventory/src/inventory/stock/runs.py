"""The order saga's steps on stock, applied a run at a time in the consumer's transaction.

The reservations consumer hands over runs of deliveries (one, under light load). A run's
creations and confirmations are three statements in all (claim and lock, lock stock, write),
the decisions made in delivery order on the locked rows held in memory: an order sees the
stock the orders before it in the run left, and the low-stock rule runs after each
reservation, as it would alone.

A segment of the run is applied together while its orders are distinct. A cancellation, or a
second event for an order of the segment, closes it: the segment is written, then the
cancellation (rare, with tombstones and returns of its own) goes through
``releases.cancel_order`` and the repeated order starts the next segment, so every event
still sees what the ones before it did.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.events import outbox
from inventory.stock import metrics
from inventory.stock.models import MovementKind, ReservationStatus
from inventory.stock.releases import cancel_order
from inventory.stock.repository import claims
from inventory.stock.repository.writes import Movement, ReservedQuantity, StockChange, write_stock
from inventory.stock.rows import LockedLine, StockLevel
from inventory.stock.rules import FailureReason, low_stock_events, retake_shortfall, shortfall
from shared.contracts.base import EventPayload
from shared.contracts.inventory import (
    ReservedLine,
    StockCommitFailed,
    StockReservationFailed,
    StockReserved,
)
from shared.messaging import Envelope

logger = logging.getLogger(__name__)

# The ledger's reasons for the two ways a confirmation commits stock.
PAID = "paid"
PAID_AFTER_EXPIRY = "paid_after_expiry"


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Reserve:
    """``orders.order_created``: reserve every line or none."""

    cause: Envelope
    order_id: uuid.UUID
    lines: Sequence[OrderLine]


@dataclass(frozen=True)
class Commit:
    """``orders.order_confirmed``: the reserved quantities leave on hand."""

    cause: Envelope
    order_id: uuid.UUID


@dataclass(frozen=True)
class Cancel:
    """``orders.order_cancelled``: release what is reserved, or return what was committed."""

    cause: Envelope
    order_id: uuid.UUID


Step = Reserve | Commit | Cancel


async def apply_steps(session: AsyncSession, *, steps: Sequence[Step], ttl: timedelta) -> None:
    """Apply ``steps`` in order, segment by segment (module doc)."""
    segment: list[Reserve | Commit] = []
    orders: set[uuid.UUID] = set()  # the segment's
    for step in steps:
        if isinstance(step, Cancel) or step.order_id in orders:
            await _apply_segment(session, segment, ttl=ttl)
            segment, orders = [], set()
        if isinstance(step, Cancel):
            await cancel_order(session=session, order_id=step.order_id, cause=step.cause)
        else:
            segment.append(step)
            orders.add(step.order_id)
    await _apply_segment(session, segment, ttl=ttl)


@dataclass
class _Effects:
    """What a segment's decisions write: accumulated in order, written in one statement."""

    on_hand: Counter[str] = field(default_factory=Counter)
    reserved: Counter[str] = field(default_factory=Counter)
    lines: list[ReservedQuantity] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)
    statuses: dict[uuid.UUID, ReservationStatus] = field(default_factory=dict)
    events: list[Envelope] = field(default_factory=list)

    def emit(self, cause: Envelope, payloads: Sequence[EventPayload]) -> None:
        self.events.extend(cause.caused(payload) for payload in payloads)


async def _apply_segment(
    session: AsyncSession, segment: Sequence[Reserve | Commit], *, ttl: timedelta
) -> None:
    """Steps for distinct orders: claim and lock everything they need, decide, write."""
    if not segment:
        return
    wanted = {step.order_id: _wanted(step.lines) for step in segment if isinstance(step, Reserve)}
    run = await claims.claim_and_lock(
        session,
        new_orders={order_id: list(quantities) for order_id, quantities in wanted.items()},
        causes={step.order_id: step.cause.id for step in segment if isinstance(step, Reserve)},
        ttl=ttl,
        held=[step.order_id for step in segment if isinstance(step, Commit)],
    )
    effects = _Effects()
    touched: dict[str, StockLevel] = {}
    for step in segment:
        if isinstance(step, Reserve):
            _reserve(step, wanted[step.order_id], run, effects, touched)
        else:
            _commit(step, run, effects, touched)
    if touched or effects.statuses:
        changes = [
            StockChange(sku, effects.on_hand[sku], effects.reserved[sku], level.low_stock_alerted)
            for sku, level in sorted(touched.items())
        ]
        await write_stock(
            session,
            changes=changes,
            lines=effects.lines,
            movements=effects.movements,
            statuses=effects.statuses,
        )
    await outbox.add_many(session, effects.events)


def _wanted(lines: Sequence[OrderLine]) -> Counter[str]:
    wanted: Counter[str] = Counter()
    for line in lines:
        wanted[line.sku] += line.quantity
    return wanted


def _reserve(
    step: Reserve,
    wanted: Counter[str],
    run: claims.ClaimedRun,
    effects: _Effects,
    touched: dict[str, StockLevel],
) -> None:
    """Reserve every line of the order or none, on the run's locked rows, and say so."""
    order_id = step.order_id
    if order_id not in run.claimed:
        # Created before (a repeat under another event id) or cancelled before it arrived.
        logger.info("order %s already has a reservation; creation ignored", order_id)
        return
    levels = [run.levels[sku] for sku in sorted(wanted) if sku in run.levels]
    failure = shortfall(wanted, levels)
    if failure is not None:
        reason, skus = failure
        effects.statuses[order_id] = ReservationStatus.REJECTED
        failed = StockReservationFailed(order_id=order_id, reason=reason.value, skus=skus)
        effects.emit(step.cause, [failed])
        return
    for level in levels:
        quantity = wanted[level.sku]
        level.reserved += quantity
        effects.reserved[level.sku] += quantity
        touched[level.sku] = level
        effects.lines.append(ReservedQuantity(order_id, level.sku, quantity))
        effects.movements.append(
            Movement(level.sku, MovementKind.RESERVATION, 0, quantity, "order", str(order_id))
        )
    low = low_stock_events(levels)
    reserved = StockReserved(
        order_id=order_id,
        items=[ReservedLine(sku=sku, quantity=q) for sku, q in sorted(wanted.items())],
        expires_at=run.claimed[order_id],
    )
    effects.emit(step.cause, [reserved, *low])


def _commit(
    step: Commit,
    run: claims.ClaimedRun,
    effects: _Effects,
    touched: dict[str, StockLevel],
) -> None:
    """The order is paid: its reserved quantities leave on hand.

    A reservation the sweeper expired takes its stock again if it is still available;
    otherwise it ends ``commit_failed`` and ``stock_commit_failed`` tells orders to refund.
    """
    order_id = step.order_id
    status = run.held.get(order_id)
    lines = run.lines.get(order_id, [])
    if status is ReservationStatus.EXPIRED:
        short = retake_shortfall(lines)
        if short:
            effects.statuses[order_id] = ReservationStatus.COMMIT_FAILED
            effects.emit(step.cause, [commit_failed(order_id, short)])
            return
        # Taken again from available: the reserved quantity was released at expiry.
        _take(order_id, lines, effects, touched, reserved=False)
        logger.warning(
            "order %s confirmed after its reservation expired: stock taken again", order_id
        )
        metrics.RETAKEN.inc()
        levels = {line.stock.sku: line.stock for line in lines}
        effects.emit(step.cause, low_stock_events(levels.values()))
        return
    if status is not ReservationStatus.RESERVED:
        logger.warning(
            "order %s confirmed but its reservation is %s: ignored", order_id, status or "absent"
        )
        return
    # Available is unchanged by a commit, so the low-stock rule has nothing to say: alarms
    # stay as they are.
    _take(order_id, lines, effects, touched, reserved=True)


def _take(
    order_id: uuid.UUID,
    lines: Sequence[LockedLine],
    effects: _Effects,
    touched: dict[str, StockLevel],
    *,
    reserved: bool,
) -> None:
    """Commit the order's lines: they leave on hand, and reserved too while ``reserved``."""
    for line in lines:
        level = line.stock
        held = line.quantity if reserved else 0
        level.on_hand -= line.quantity
        level.reserved -= held
        effects.on_hand[level.sku] -= line.quantity
        effects.reserved[level.sku] -= held
        touched[level.sku] = level
        effects.movements.append(
            Movement(
                level.sku,
                MovementKind.COMMIT,
                -line.quantity,
                -held,
                PAID if reserved else PAID_AFTER_EXPIRY,
                str(order_id),
            )
        )
    effects.statuses[order_id] = ReservationStatus.COMMITTED


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
