"""Idempotent consumers: decode, deduplicate, handle in one transaction, then acknowledge.

Per message:
- malformed (not JSON, not an envelope, unknown ``(type, version)``, or a type this consumer
  has no handler for) → rejected without requeue: the queue dead-letters it to its DLQ at
  once, there is no redelivery loop;
- already in the inbox → acked, handler not run;
- handler raises → the transaction rolls back, the message is returned (nack, requeue) and
  the quorum queue counts the delivery; past ``x-delivery-limit`` it goes to the DLQ;
- handler fails because the database is away (connection refused, lost or out of slots) →
  the message is not the problem: the handler is retried in place with growing pauses, for
  up to ``DATABASE_RETRY_SECONDS``, before the message is returned as above. Without this a
  database blip of a second spent every delivery of the messages in flight and sent sound
  events to the DLQ;
- otherwise the inbox key and the handler's effects commit together, then the ack is sent.
  An ack lost after commit means a redelivery, which the inbox absorbs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.context import request_id_var
from shared.db import database_unavailable
from shared.messaging import metrics
from shared.messaging.broker import Broker
from shared.messaging.envelope import Envelope, MalformedEventError, decode
from shared.messaging.inbox import InboxMixin, claim_event, inbox_table
from shared.messaging.topology import DeclaredQueue, declare_queue
from shared.settings import BaseServiceSettings

logger = logging.getLogger(__name__)

EventHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]
"""Runs inside the consumer's transaction; raise to have the event redelivered."""

DATABASE_RETRY_SECONDS = 30.0  # in-place retries while the database is away, per message
_RETRY_PAUSE_FIRST, _RETRY_PAUSE_MAX = 0.1, 2.0


@dataclass(frozen=True)
class Consumer:
    """One consuming purpose: its queue (named after ``name``) and a handler per event type.

    The queue is bound to exactly the event types in ``handlers``; ``name`` is also the
    consumer's name in the inbox.
    """

    name: str
    handlers: Mapping[str, EventHandler]
    inbox: type[InboxMixin]


class RunningConsumer:
    """A ``Consumer`` attached to the broker: declares its queue, consumes, drains on stop."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        settings: BaseServiceSettings,
        broker: Broker,
        sessionmaker: async_sessionmaker[AsyncSession],
    ) -> None:
        self.consumer = consumer
        self.settings = settings
        self.broker = broker
        self.sessionmaker = sessionmaker
        self._inbox: Table = inbox_table(consumer.inbox)
        # Strong references: robust channels restore only what is still referenced.
        self._channel: AbstractRobustChannel | None = None
        self._declared: DeclaredQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def queue(self) -> AbstractQueue:
        if self._declared is None:
            raise RuntimeError("consumer not started")
        return self._declared.queue

    async def declare(self) -> DeclaredQueue:
        """Declare the queue, its DLQ and bindings (idempotent); does not consume."""
        if self._declared is None:
            self._channel = await self.broker.channel(prefetch=self.settings.broker_prefetch)
            self._declared = await declare_queue(
                self._channel,
                settings=self.settings,
                purpose=self.consumer.name,
                event_types=self.consumer.handlers,
            )
        return self._declared

    async def start(self) -> None:
        """Declare, then start consuming with bounded prefetch."""
        declared = await self.declare()
        if self._consumer_tag is None:
            self._consumer_tag = await declared.queue.consume(self._on_message)

    async def stop(self, *, drain_seconds: float | None = None) -> None:
        """Stop taking messages, then wait (bounded) for those in flight to finish."""
        tag, self._consumer_tag = self._consumer_tag, None
        if tag is not None and self._declared is not None:
            with contextlib.suppress(Exception):  # the broker may be away; closing cancels too
                await self._declared.queue.cancel(tag)
        limit = (
            self.settings.worker_shutdown_timeout_seconds
            if drain_seconds is None
            else drain_seconds
        )
        try:
            await asyncio.wait_for(self._idle.wait(), limit)
        except TimeoutError:
            logger.warning(
                "%s: %d messages still in flight at stop", self.consumer.name, len(self._in_flight)
            )

    # -- one message -------------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        self._idle.clear()
        try:
            await self.handle_message(message)
        finally:
            self._in_flight.discard(task)
            if not self._in_flight:
                self._idle.set()

    async def handle_message(self, message: AbstractIncomingMessage) -> None:
        """Process one delivery to the end: acked, returned or dead-lettered."""
        label = self.consumer.name
        try:
            event = decode(message.body)
            handler = self.consumer.handlers.get(event.type)
            if handler is None:
                raise MalformedEventError(f"{label} has no handler for {event.type}")
        except MalformedEventError as exc:
            logger.error(
                "%s: dead-lettering malformed message %s: %s", label, message.message_id, exc
            )
            metrics.EVENTS_DEAD_LETTERED.labels(label, "malformed").inc()
            await self._settle(message.reject(requeue=False))
            return

        token = request_id_var.set(event.correlation_id)
        started = time.perf_counter()
        try:
            handled = await self._run_handler_while_database_away(handler, event)
        except Exception:
            metrics.EVENTS_FAILED.labels(label).inc()
            if self._is_last_delivery(message):
                metrics.EVENTS_DEAD_LETTERED.labels(label, "delivery_limit").inc()
            logger.exception("%s: handler failed for %s %s", label, event.type, event.id)
            await self._settle(message.nack(requeue=True))
            return
        finally:
            request_id_var.reset(token)
        metrics.HANDLER_LATENCY.labels(label).observe(time.perf_counter() - started)
        (metrics.EVENTS_CONSUMED if handled else metrics.EVENTS_DUPLICATE).labels(label).inc()
        await self._settle(message.ack())

    async def _run_handler_while_database_away(
        self, handler: EventHandler, event: Envelope
    ) -> bool:
        """``_run_handler``, retried in place while the database is unavailable (bounded, and
        not once the consumer is stopping)."""
        deadline = time.monotonic() + DATABASE_RETRY_SECONDS
        pause = _RETRY_PAUSE_FIRST
        while True:
            try:
                return await self._run_handler(handler, event)
            except Exception as exc:
                stopping = self._consumer_tag is None
                if not database_unavailable(exc) or stopping or time.monotonic() >= deadline:
                    raise
                metrics.EVENTS_FAILED.labels(self.consumer.name).inc()
                logger.warning(
                    "%s: database unavailable for %s %s, retrying in %.1fs: %r",
                    self.consumer.name,
                    event.type,
                    event.id,
                    pause,
                    exc,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_PAUSE_MAX)

    async def _run_handler(self, handler: EventHandler, event: Envelope) -> bool:
        """Run the handler in a transaction with the inbox key; False for a duplicate."""
        async with self.sessionmaker() as session, session.begin():
            claimed = await claim_event(
                session,
                table=self._inbox,
                event_id=event.id,
                consumer=self.consumer.name,
                event_type=event.type,
            )
            if not claimed:
                return False
            await handler(session, event)
        return True

    def _is_last_delivery(self, message: AbstractIncomingMessage) -> bool:
        # Quorum queues count earlier deliveries in x-delivery-count (absent on the first).
        count = (message.headers or {}).get("x-delivery-count", 0)
        return isinstance(count, int) and count >= self.settings.broker_delivery_limit

    async def _settle(self, settlement: Awaitable[None]) -> None:
        # The channel may have died with the broker: the message then comes back by itself.
        try:
            await settlement
        except Exception as exc:
            logger.warning("%s: could not settle a message: %r", self.consumer.name, exc)
