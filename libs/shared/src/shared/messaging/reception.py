"""A delivery's arrival: decoded, checked, and (for a prepared handler) prepared.

- malformed (not JSON, not an envelope, unknown ``(type, version)``, or a type this consumer
  has no handler for) → rejected without requeue: the queue dead-letters it at once;
- refused (its ``producer`` does not own its type, or it came through the events exchange
  under another routing key: forged, see ``envelope.check_provenance``) → copied to the
  queue's refused queue (never replayed) with the reason in its ``x-refusal-reason`` header,
  then acked; nothing applied;
- a prepared handler's ``prepare`` starts on arrival, side by side with every other delivery
  in flight (the prefetch bounds them), outside any transaction; one that raises returns the
  delivery as a handler failure does.

Each arrival is a future the batches wait for in delivery order, so an ack of a later batch
never covers a delivery whose refusal or preparation has not ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel

from shared.context import request_id_var
from shared.messaging import metrics
from shared.messaging.database_retry import DatabaseRetry
from shared.messaging.envelope import (
    MalformedEventError,
    RefusedEventError,
    check_provenance,
    decode,
)
from shared.messaging.handlers import PREPARED, AnyHandler, Delivery
from shared.messaging.settlement import give_back, settle
from shared.messaging.topology import events_exchange_name, queue_name, refused_exchange_name
from shared.settings import BaseServiceSettings
from shared.tracing.messaging import event_trace_ids, preparing

logger = logging.getLogger(__name__)

REFUSAL_REASON_HEADER = "x-refusal-reason"
REFUSED_ROUTING_KEY_HEADER = "x-refused-routing-key"  # the key it arrived under

Arrival = asyncio.Future[Delivery | None]
"""Done with the delivery ready to handle, or None once it was rejected or given back."""


class Reception:
    """Turns the messages of the consumer ``label``'s queue into arrivals (module doc)."""

    def __init__(
        self,
        label: str,
        *,
        handlers: Mapping[str, AnyHandler],
        settings: BaseServiceSettings,
        channel: AbstractRobustChannel,
        retry: DatabaseRetry,
    ) -> None:
        self.label = label
        self.handlers = handlers
        self.settings = settings
        self._channel = channel
        self._retry = retry
        self._events_exchange = events_exchange_name(settings)

    async def arrive(self, message: AbstractIncomingMessage) -> Arrival:
        """The delivery's arrival: done at once, or when its refusal or preparation ends
        (started now, not when a batch takes it)."""
        if message.redelivered:
            metrics.EVENTS_REDELIVERED.labels(self.label).inc()
        delivery = await self._decode(message)
        if isinstance(delivery, _Refusal):
            return asyncio.ensure_future(self._refuse(message, delivery.reason))
        if delivery is not None and isinstance(delivery.handler, PREPARED):
            return asyncio.ensure_future(self._prepare(delivery))
        ready: Arrival = asyncio.get_running_loop().create_future()
        ready.set_result(delivery)
        return ready

    async def _decode(self, message: AbstractIncomingMessage) -> Delivery | _Refusal | None:
        """The delivery with its event and handler, a refusal to settle, or None once a
        malformed one is rejected."""
        label = self.label
        try:
            event = decode(message.body)
            check_provenance(event, routing_key=self._routing_key(message))
            handler = self.handlers.get(event.type)
            if handler is None:
                raise MalformedEventError(f"{label} has no handler for {event.type}")
        except RefusedEventError as exc:
            return _Refusal(str(exc))
        except MalformedEventError as exc:
            logger.error(
                "%s: dead-lettering malformed message %s: %s", label, message.message_id, exc
            )
            metrics.EVENTS_DEAD_LETTERED.labels(label, "malformed").inc()
            await settle(label, message.reject(requeue=False))
            return None
        return Delivery(message, event, handler)

    def _routing_key(self, message: AbstractIncomingMessage) -> str | None:
        """The routing key the envelope's type must equal, or None for a message put straight
        into the queue through the default exchange (a DLQ replay to its source queue: only
        an operator may publish there, see docs/deployment.md)."""
        if message.exchange == self._events_exchange:
            return message.routing_key or ""
        if not message.exchange:
            return None
        return f"{message.exchange}:{message.routing_key}"  # another exchange: never the type

    async def _refuse(self, message: AbstractIncomingMessage, reason: str) -> Delivery | None:
        """Quarantine a forged envelope with ``reason``: a copy goes to this queue's refused
        queue, then the delivery is acked. Should the copy fail, the delivery is rejected and
        the queue dead-letters it without the reason; a replay keeps it, as it keeps every
        letter whose provenance does not hold."""
        label = self.label
        logger.error("%s: refusing message %s: %s", label, message.message_id, reason)
        metrics.EVENTS_DEAD_LETTERED.labels(label, "refused").inc()
        try:
            exchange = await self._channel.get_exchange(
                refused_exchange_name(self.settings), ensure=False
            )
            headers = dict(message.headers or {})
            headers[REFUSAL_REASON_HEADER] = reason
            headers[REFUSED_ROUTING_KEY_HEADER] = message.routing_key or ""
            copy = aio_pika.Message(
                message.body,
                headers=headers,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id,
                type=message.type,
            )
            # Routed by source queue name; the channel awaits the broker's confirm.
            await exchange.publish(copy, routing_key=queue_name(self.settings, label))
        except Exception as exc:
            logger.warning("%s: could not put a refused message aside: %r", label, exc)
            await settle(label, message.reject(requeue=False))
            return None
        await settle(label, message.ack())
        return None

    async def _prepare(self, delivery: Delivery) -> Delivery | None:
        """Run a prepared handler's ``prepare``, outside any transaction; the delivery with
        its result, or None once a failed preparation has returned the delivery."""
        handler = delivery.handler
        if not isinstance(handler, PREPARED):
            return delivery
        event = delivery.event
        token = request_id_var.set(event.correlation_id)
        trace_ids: tuple[str, str] | None = None
        try:
            with preparing(self.label, delivery):  # a span (shared.tracing.messaging)
                try:
                    prepared = await self._retry(
                        lambda: handler.prepare(event), what=f"preparing {event.type} {event.id}"
                    )
                except Exception:
                    # The span ends before the give-back is logged: its ids, for that line.
                    trace_ids = event_trace_ids(event.id)
                    raise
        except Exception as exc:
            limit = self.settings.broker_delivery_limit
            await give_back(self.label, delivery, exc, limit=limit, trace_ids=trace_ids)
            return None
        finally:
            request_id_var.reset(token)
        return replace(delivery, prepared=prepared)


@dataclass(frozen=True)
class _Refusal:
    reason: str  # why the envelope is refused (no payload values: it reaches logs and queues)
