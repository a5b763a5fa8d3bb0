"""Event handlers: decode the payload, hand it to the saga reactions or the price replica.

Each runs inside the consumer's transaction, with the inbox key: the effect and the record
that the event was handled commit together, and a redelivered event is skipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from orders.catalog.service import apply_products_upserted
from orders.config import OrdersSettings
from orders.events import ProcessedEvent
from orders.order import service
from orders.saga import Trigger
from shared.contracts.inventory import (
    ProductUpserted,
    ReservationExpired,
    StockReservationFailed,
    StockReserved,
)
from shared.contracts.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from shared.messaging import BatchHandler, Consumer, Envelope, EventHandler

SettingsHandler = Callable[..., Awaitable[None]]

SAGA_CONSUMER = "orders.saga"
CATALOG_CONSUMER = "orders.catalog"


async def on_stock_reserved(
    session: AsyncSession, event: Envelope, *, settings: OrdersSettings
) -> None:
    data = event.payload(StockReserved)
    await service.react(
        session=session,
        settings=settings,
        event=event,
        order_id=data.order_id,
        trigger=Trigger.STOCK_RESERVED,
        reason="stock_reserved",
    )


async def on_stock_reservation_failed(
    session: AsyncSession, event: Envelope, *, settings: OrdersSettings
) -> None:
    data = event.payload(StockReservationFailed)
    await service.react(
        session=session,
        settings=settings,
        event=event,
        order_id=data.order_id,
        trigger=Trigger.STOCK_RESERVATION_FAILED,
        reason=data.reason,
    )


async def on_reservation_expired(
    session: AsyncSession, event: Envelope, *, settings: OrdersSettings
) -> None:
    data = event.payload(ReservationExpired)
    await service.react(
        session=session,
        settings=settings,
        event=event,
        order_id=data.order_id,
        trigger=Trigger.RESERVATION_EXPIRED,
        reason="reservation_expired",
    )


async def on_payment_succeeded(
    session: AsyncSession, event: Envelope, *, settings: OrdersSettings
) -> None:
    data = event.payload(PaymentSucceeded)
    await service.react(
        session=session,
        settings=settings,
        event=event,
        order_id=data.order_id,
        trigger=Trigger.PAYMENT_SUCCEEDED,
        reason="payment_succeeded",
        payment_id=data.payment_id,
    )


async def on_payment_failed(
    session: AsyncSession, event: Envelope, *, settings: OrdersSettings
) -> None:
    data = event.payload(PaymentFailed)
    await service.react(
        session=session,
        settings=settings,
        event=event,
        order_id=data.order_id,
        trigger=Trigger.PAYMENT_FAILED,
        reason=data.reason,
    )


async def on_payment_refunded(
    session: AsyncSession, event: Envelope, *, settings: OrdersSettings
) -> None:
    data = event.payload(PaymentRefunded)
    await service.react(
        session=session,
        settings=settings,
        event=event,
        order_id=data.order_id,
        trigger=Trigger.PAYMENT_REFUNDED,
        reason="refunded",
    )


async def on_products_upserted(session: AsyncSession, events: Sequence[Envelope]) -> None:
    await apply_products_upserted(session=session, events=events)


def consumers(settings: OrdersSettings) -> list[Consumer]:
    """The worker's consuming purposes, one queue each.

    Prices have a queue of their own: a burst of catalog updates never delays the saga.
    """

    def bind(handler: SettingsHandler) -> EventHandler:
        return partial(handler, settings=settings)

    saga = Consumer(
        name=SAGA_CONSUMER,
        handlers={
            StockReserved.event_type: bind(on_stock_reserved),
            StockReservationFailed.event_type: partial(
                on_stock_reservation_failed, settings=settings
            ),
            ReservationExpired.event_type: bind(on_reservation_expired),
            PaymentSucceeded.event_type: bind(on_payment_succeeded),
            PaymentFailed.event_type: bind(on_payment_failed),
            PaymentRefunded.event_type: bind(on_payment_refunded),
        },
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
