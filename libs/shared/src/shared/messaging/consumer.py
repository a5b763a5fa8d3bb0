"""Idempotent consumers: decode, deduplicate, handle in one transaction, then acknowledge.

A ``Consumer`` declares one consuming purpose: its queue and a handler per event type
(``handlers``: the handler kinds). A ``RunningConsumer`` attaches it to the broker; per
message:
- on arrival it is decoded, malformed ones rejected and forged ones refused to the DLQ, and
  a prepared handler's call started (``reception``);
- deliveries that queue up behind a busy transaction share the next one (``batching``);
- the inbox key and the handler's effects commit together, then the ack is sent; a handler
  that raises has its delivery returned, the quorum queue counting it up to
  ``x-delivery-limit`` before the DLQ (``transactions``, ``settlement``);
- while the database is away, the work is retried in place first (``database_retry``).
Inbox keys older than ``inbox_retention_hours`` are pruned, and the queue's depths read
(``depths``), by periodic jobs of the worker.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.messaging.batching import Batches
from shared.messaging.broker import Broker
from shared.messaging.database_retry import DatabaseRetry
from shared.messaging.depths import INTERVAL_SECONDS, Depths, read_depths
from shared.messaging.handlers import AnyHandler
from shared.messaging.inbox import InboxMixin, inbox_table, prune_inbox
from shared.messaging.jobs import PeriodicJob
from shared.messaging.reception import Reception
from shared.messaging.topology import DeclaredQueue, declare_queue
from shared.messaging.transactions import Transactions
from shared.settings import BaseServiceSettings

logger = logging.getLogger(__name__)

INBOX_PRUNE_INTERVAL_SECONDS = 300.0


@dataclass(frozen=True)
class Consumer:
    """One consuming purpose: its queue (named after ``name``) and a handler per event type.

    The queue is bound to exactly the event types in ``handlers``; ``name`` is also the
    consumer's name in the inbox.
    """

    name: str
    handlers: Mapping[str, AnyHandler]
    inbox: type[InboxMixin]
    max_batch: int = 100
    """Most events handled in one transaction. Use 1 for handlers with effects outside the
    database (a provider call): a failed batch runs its handlers a second time."""
    concurrency: int = 1
    """Transactions in flight at once. One keeps delivery order and cannot deadlock with
    itself; handlers that mostly wait on something else (a provider) want more."""

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.concurrency < 1:
            raise ValueError("max_batch and concurrency must be at least 1")


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
        label = consumer.name
        self._retry = DatabaseRetry(label, stopping=lambda: self._consumer_tag is None)
        self.transactions = Transactions(
            label,
            sessionmaker=sessionmaker,
            inbox=inbox_table(consumer.inbox),
            retry=self._retry,
            delivery_limit=settings.broker_delivery_limit,
            in_order=consumer.concurrency == 1,
        )
        self._batches = Batches(
            label,
            handle=self.transactions.handle_batch,
            max_batch=consumer.max_batch,
            concurrency=consumer.concurrency,
            linger_ms=settings.consumer_linger_ms,
        )
        # Strong references: robust channels restore only what is still referenced.
        self._channel: AbstractRobustChannel | None = None
        self._declared: DeclaredQueue | None = None
        self._consumer_tag: str | None = None

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
            assert self._channel is not None  # declared above
            reception = Reception(
                self.consumer.name,
                handlers=self.consumer.handlers,
                settings=self.settings,
                channel=self._channel,
                retry=self._retry,
            )
            batches = self._batches

            async def on_message(message: AbstractIncomingMessage) -> None:
                # Returns at once: the delivery is in flight until a batch settles it.
                batches.add(await reception.arrive(message))

            self._consumer_tag = await declared.queue.consume(on_message)

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
        if not await self._batches.drained(limit):
            logger.warning(
                "%s: %d messages still in flight at stop",
                self.consumer.name,
                self._batches.in_flight,
            )

    async def prune_inbox(self) -> int:
        """Delete this consumer's inbox keys older than the retention; the number deleted."""
        cutoff = datetime.now(UTC) - timedelta(hours=self.settings.inbox_retention_hours)
        return await prune_inbox(
            self.sessionmaker,
            table=self.transactions.inbox,
            consumer=self.consumer.name,
            older_than=cutoff,
        )

    async def read_depths(self) -> Depths:
        """How much waits in the queue and its DLQ now (``shared.messaging.depths``)."""
        if self._channel is None or self._declared is None:
            raise RuntimeError("consumer not declared")
        return await read_depths(self._channel, self._declared, label=self.consumer.name)

    def depth_reading(self) -> PeriodicJob:
        """The periodic job that reports this consumer's queue depths on ``/metrics``."""

        async def read() -> None:
            if self._declared is None:
                return  # the broker was away at start-up: not declared yet
            try:
                await self.read_depths()
            except Exception as exc:  # the broker away: the gauges keep their values
                logger.debug("%s: could not read the queue depths: %r", self.consumer.name, exc)

        return PeriodicJob(
            name=f"{self.consumer.name} queue depths", interval=INTERVAL_SECONDS, run=read
        )

    def inbox_pruning(self) -> PeriodicJob:
        """The periodic job that prunes this consumer's inbox (run by the worker runner)."""

        async def prune() -> None:
            if deleted := await self.prune_inbox():
                logger.info("%s: pruned %d inbox keys", self.consumer.name, deleted)

        return PeriodicJob(
            name=f"{self.consumer.name} inbox pruning",
            interval=INBOX_PRUNE_INTERVAL_SECONDS,
            run=prune,
            pause_first=True,
        )
