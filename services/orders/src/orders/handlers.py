"""Event handlers: decode the payload, hand it to the saga reactions or the price replica.

Each runs inside the consumer's transaction, with the inbox key: the effect and the record
that the event was handled commit together, and a redelivered event is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from orders.catalog.service import apply_products_upserted
from orders.config import OrdersSettings
from orders.events import ProcessedEvent
from orders.order.reactions import Reaction, react_all
from orders.saga import Step, Trigger
from shared.contracts.inventory import (
    ProductUpserted,
    ReservationExpired,
    StockCommitFailed,
    StockReservationFailed,
    StockReserved,
)
from shared.contracts.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from shared.messaging import BatchHandler, Consumer, Envelope

SAGA_CONSUMER = "orders.saga"
CATALOG_CONSUMER = "orders.catalog"


def _now() -> datetime:
    return datetime.now(UTC)


def _stock_reserved(event: Envelope) -> Reaction:
    data = event.payload(StockReserved)
    step = Step(
        Trigger.STOCK_RESERVED, "stock_reserved", _now(), reservation_expires_at=data.expires_at
    )
    return Reaction(event, data.order_id, step)


def _stock_reservation_failed(event: Envelope) -> Reaction:
    data = event.payload(StockReservationFailed)
    return Reaction(
        event, data.order_id, Step(Trigger.STOCK_RESERVATION_FAILED, data.reason, _now())
    )


def _reservation_expired(event: Envelope) -> Reaction:
    data = event.payload(ReservationExpired)
    step = Step(Trigger.RESERVATION_EXPIRED, "reservation_expired", _now())
    return Reaction(event, data.order_id, step)


def _stock_commit_failed(event: Envelope) -> Reaction:
    data = event.payload(StockCommitFailed)
    detail = f"{data.reason}: {', '.join(data.skus)}"
    return Reaction(event, data.order_id, Step(Trigger.STOCK_COMMIT_FAILED, detail, _now()))


def _payment_succeeded(event: Envelope) -> Reaction:
    # The trigger is provisional: the saga compares the charge with the order's total
    # (``saga.payment_trigger``) once the order is locked.
    data = event.payload(PaymentSucceeded)
    step = Step(
        Trigger.PAYMENT_SUCCEEDED,
        "payment_succeeded",
        _now(),
        payment_id=data.payment_id,
        charged=data.amount,
    )
    return Reaction(event, data.order_id, step)


def _payment_failed(event: Envelope) -> Reaction:
    data = event.payload(PaymentFailed)
    return Reaction(event, data.order_id, Step(Trigger.PAYMENT_FAILED, data.reason, _now()))


def _payment_refunded(event: Envelope) -> Reaction:
    data = event.payload(PaymentRefunded)
    return Reaction(event, data.order_id, Step(Trigger.PAYMENT_REFUNDED, "refunded", _now()))


# What each event the saga consumes asks of its order.
SAGA_REACTIONS: Mapping[str, Callable[[Envelope], Reaction]] = {
    StockReserved.event_type: _stock_reserved,
    StockReservationFailed.event_type: _stock_reservation_failed,
    ReservationExpired.event_type: _reservation_expired,
    StockCommitFailed.event_type: _stock_commit_failed,
    PaymentSucceeded.event_type: _payment_succeeded,
    PaymentFailed.event_type: _payment_failed,
    PaymentRefunded.event_type: _payment_refunded,
}


async def on_saga_events(
    session: AsyncSession, events: Sequence[Envelope], *, settings: OrdersSettings
) -> None:
    """A run of the saga's events, in delivery order, whatever their types."""
    reactions = [SAGA_REACTIONS[event.type](event) for event in events]
    await react_all(session=session, settings=settings, reactions=reactions)


async def on_products_upserted(session: AsyncSession, events: Sequence[Envelope]) -> None:
    await apply_products_upserted(session=session, events=events)


def consumers(settings: OrdersSettings) -> list[Consumer]:
    """The worker's consuming purposes, one queue each.

    Prices have a queue of their own: a burst of catalog updates never delays the saga.
    """

    # One batch handler for every saga event: a batch's reactions lock their orders in one
    # statement and write their transitions in another, whatever the mix of types.
    saga_events = BatchHandler(partial(on_saga_events, settings=settings))
    saga = Consumer(
        name=SAGA_CONSUMER,
        handlers=dict.fromkeys(SAGA_REACTIONS, saga_events),
        inbox=ProcessedEvent,
    )
    catalog = Consumer(
        name=CATALOG_CONSUMER,
        # A batch handler: a catalog import's thousands of upserts are a statement per
        # batch, not per product.
        handlers={ProductUpserted.event_type: BatchHandler(on_products_upserted)},
        inbox=ProcessedEvent,
    )
    return [saga, catalog]
