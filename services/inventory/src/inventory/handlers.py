"""Event handlers: decode the order saga's events and call the reservation service.

Each runs in the consumer's transaction, next to the inbox record of the event, so a
duplicate delivery is skipped and a crash leaves neither the effect nor the record.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.config import InventorySettings
from inventory.events import ProcessedEvent
from inventory.stock.reservations import OrderLine, cancel_order, commit_order, reserve_order
from shared.contracts.inventory import StockLow
from shared.contracts.orders import OrderCancelled, OrderConfirmed, OrderCreated
from shared.messaging import Consumer, Envelope

RESERVATIONS_CONSUMER = "inventory.reservations"
STOCK_ALERTS_CONSUMER = "inventory.stock-alerts"

logger = logging.getLogger(__name__)


def reservations_consumer(settings: InventorySettings) -> Consumer:
    """The consumer of the order saga's events that move stock."""
    ttl = timedelta(seconds=settings.reservation_ttl_seconds)

    async def on_order_created(session: AsyncSession, event: Envelope) -> None:
        order = event.payload(OrderCreated)
        lines = [OrderLine(line.sku, line.quantity) for line in order.items]
        await reserve_order(
            session=session, order_id=order.order_id, lines=lines, ttl=ttl, cause=event
        )

    async def on_order_confirmed(session: AsyncSession, event: Envelope) -> None:
        order_id = event.payload(OrderConfirmed).order_id
        await commit_order(session=session, order_id=order_id, cause=event)

    async def on_order_cancelled(session: AsyncSession, event: Envelope) -> None:
        order_id = event.payload(OrderCancelled).order_id
        await cancel_order(session=session, order_id=order_id, cause=event)

    return Consumer(
        name=RESERVATIONS_CONSUMER,
        handlers={
            "orders.order_created": on_order_created,
            "orders.order_confirmed": on_order_confirmed,
            "orders.order_cancelled": on_order_cancelled,
        },
        inbox=ProcessedEvent,
    )


def stock_alerts_consumer() -> Consumer:
    """Logs each ``stock_low`` as a warning for whoever watches the logs.

    It is also what makes the event routable: the relay publishes with ``mandatory``, and an
    event type no queue is bound to would be returned and retried forever.
    """

    async def on_stock_low(session: AsyncSession, event: Envelope) -> None:
        alert = event.payload(StockLow)
        logger.warning(
            "stock low: %s has %d available (reorder point %d)",
            alert.sku,
            alert.available,
            alert.reorder_point,
        )

    return Consumer(
        name=STOCK_ALERTS_CONSUMER,
        handlers={"inventory.stock_low": on_stock_low},
        inbox=ProcessedEvent,
    )
