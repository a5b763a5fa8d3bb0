"""Settling a delivery with the broker, and counting how it ended.

An ack is sent only after the transaction that claimed the event's inbox key committed; an
ack lost after commit means a redelivery, which the inbox absorbs. A delivery whose handler
failed goes back (nack, requeue): the quorum queue counts its deliveries and, past
``x-delivery-limit``, dead-letters it. A settlement that fails because the channel died with
the broker is only logged: the message then comes back by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from aio_pika.abc import AbstractIncomingMessage

from shared.messaging import metrics
from shared.messaging.handlers import Delivery

logger = logging.getLogger(__name__)


async def settle(label: str, settlement: Awaitable[None]) -> None:
    """Await an ack, nack or reject; a failure is logged, not raised (module doc)."""
    try:
        await settlement
    except Exception as exc:
        logger.warning("%s: could not settle a message: %r", label, exc)


async def give_back(
    label: str,
    delivery: Delivery,
    error: Exception,
    *,
    limit: int,
    trace_ids: tuple[str, str] | None = None,
) -> None:
    """Return a delivery whose handler failed: the queue counts it and, past ``limit``
    deliveries, dead-letters it. ``trace_ids``: of the span it failed in, which has ended by
    now, so that the error line still leads to that trace (``shared.logging``)."""
    event, message = delivery.event, delivery.message
    metrics.EVENTS_FAILED.labels(label).inc()
    if is_last_delivery(message, limit=limit):
        metrics.EVENTS_DEAD_LETTERED.labels(label, "delivery_limit").inc()
    ids = None if trace_ids is None else {"trace_id": trace_ids[0], "span_id": trace_ids[1]}
    logger.error(
        "%s: handler failed for %s %s", label, event.type, event.id, exc_info=error, extra=ids
    )
    await settle(label, message.nack(requeue=True))


def count_success(label: str, handled: bool, seconds: float) -> None:
    """Count a committed delivery: handled, or a duplicate the inbox skipped."""
    metrics.HANDLER_LATENCY.labels(label).observe(seconds)
    (metrics.EVENTS_CONSUMED if handled else metrics.EVENTS_DUPLICATE).labels(label).inc()


def is_last_delivery(message: AbstractIncomingMessage, *, limit: int) -> bool:
    # Quorum queues count earlier deliveries in x-delivery-count (absent on the first).
    count = (message.headers or {}).get("x-delivery-count", 0)
    return isinstance(count, int) and count >= limit
