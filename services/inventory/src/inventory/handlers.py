"""Event handlers: decode the order saga's events and hand them to ``stock.runs``.

Each runs in the consumer's transaction, next to the inbox record of the event, so a
duplicate delivery is skipped and a crash leaves neither the effect nor the record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.config import InventorySettings
from inventory.events import ProcessedEvent
from inventory.stock.runs import Cancel, Commit, OrderLine, Reserve, Step, apply_steps
from shared.contracts.inventory import StockLow
from shared.contracts.orders import OrderCancelled, OrderConfirmed, OrderCreated
from shared.messaging import BatchHandler, Consumer, Envelope

RESERVATIONS_CONSUMER = "inventory.reservations"
STOCK_ALERTS_CONSUMER = "inventory.stock-alerts"

logger = logging.getLogger(__name__)


def saga_step(event: Envelope) -> Step:
    """What an event of the order saga asks of stock."""
    if event.type == OrderCreated.event_type:
        order = event.payload(OrderCreated)
        lines = [OrderLine(line.sku, line.quantity) for line in order.items]
        return Reserve(event, order.order_id, lines)
    if event.type == OrderConfirmed.event_type:
        return Commit(event, event.payload(OrderConfirmed).order_id)
    if event.type == OrderCancelled.event_type:
        return Cancel(event, event.payload(OrderCancelled).order_id)
    raise ValueError(f"{event.type} is not an event of the order saga")


def reservations_consumer(settings: InventorySettings) -> Consumer:
    """The consumer of the order saga's events that move stock.

    One batch handler for its three event types: a run of deliveries, whatever their mix,
    is a few statements (``inventory.stock.runs``), not two per event.
    """
    ttl = timedelta(seconds=settings.reservation_ttl_seconds)

    async def on_saga_events(session: AsyncSession, events: Sequence[Envelope]) -> None:
        await apply_steps(session, steps=[saga_step(event) for event in events], ttl=ttl)

    saga_events = BatchHandler(on_saga_events)
    return Consumer(
        name=RESERVATIONS_CONSUMER,
        handlers={
            OrderCreated.event_type: saga_events,
            OrderConfirmed.event_type: saga_events,
            OrderCancelled.event_type: saga_events,
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
