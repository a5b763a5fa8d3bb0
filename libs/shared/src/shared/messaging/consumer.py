"""Idempotent consumers: decode, deduplicate, handle in one transaction, then acknowledge.

Per message:
- malformed (not JSON, not an envelope, unknown ``(type, version)``, or a type this consumer
  has no handler for) → rejected without requeue: the queue dead-letters it to its DLQ at
  once, there is no redelivery loop;
- refused (its ``producer`` is not the owner of its type, or it came through the events
  exchange under another routing key: forged, see ``envelope.check_provenance``) → copied to
  the DLQ with the reason in its ``x-refusal-reason`` header, then acked; nothing applied;
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

Prepared handlers: a ``PreparedHandler`` splits an event's handling in two. ``prepare`` runs
first, outside any transaction and holding no connection while it waits (a call to a payment
provider); ``apply`` then runs in the transaction with the inbox key, given what ``prepare``
returned. ``prepare`` must be idempotent: it runs again on a redelivery, and also runs for a
duplicate, which the inbox then skips without applying. A ``prepare`` that raises returns the
delivery as a handler failure does. A delivery's preparation starts when it arrives, side by
side with every other one in flight (the prefetch bounds them), not when a batch takes it: a
batch takes the oldest delivery once it is prepared and every prepared one behind it, so a
delivery waits for its own call and the transaction before it, not for a batch of calls that
started after it. A batch that is retried (one of its ``apply`` failed) is not prepared
again. Without this split a slow call kept a pooled connection idle in transaction for its
whole length, so the pool, not the work, bounded how many could be in flight.

Batch handlers: a ``BatchHandler`` takes every new event of a run of consecutive deliveries
of its type in one call, in the batch's transaction, so that its effect is one statement
for the run instead of one per event (a catalog import, a benchmark's record). It must apply
every event it is given or raise. When it raises for a run of several events, which one is
at fault is unknown: the batch's events are then handled one per transaction, the handler
given one event at a time, so the rules above still hold per event. A
``PreparedBatchHandler`` is both: prepared per event on arrival, applied a run at a time.

Batches: deliveries that arrive while a transaction is busy wait, and the next transaction
takes all of them (up to ``Consumer.max_batch``; of prepared ones, those prepared, as above):
one claim of every inbox key, the handlers in delivery order, one commit, then the acks.
Under load the begin, claim, commit and ack are paid once per batch instead of once per
event; at a trickle every batch holds one event and nothing waits. While batches come close
together, a runner that finds the consumer idle waits ``consumer_linger_ms`` before its
first batch, so the deliveries right behind share it (``shared.messaging.linger``). If a
handler in a batch raises, the batch rolls back, that event alone is returned (as above)
and the others try again together. A deadlock or serialization failure between batches, or
a database outage past the in-place retries, is no event's fault: the batch's events are
then handled one per transaction. So the rules above hold per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustChannel
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.context import request_id_var
from shared.db import database_unavailable
from shared.messaging import metrics
from shared.messaging.broker import Broker
from shared.messaging.envelope import (
    Envelope,
    MalformedEventError,
    RefusedEventError,
    check_provenance,
    decode,
)
from shared.messaging.inbox import InboxMixin, claim_events, inbox_table, prune_inbox
from shared.messaging.linger import Linger
from shared.messaging.outbox import deferring_events
from shared.messaging.topology import (
    DeclaredQueue,
    dead_letter_exchange_name,
    declare_queue,
    events_exchange_name,
    queue_name,
)
from shared.settings import BaseServiceSettings
from shared.tracing.messaging import consuming, preparing

logger = logging.getLogger(__name__)

EventHandler = Callable[[AsyncSession, Envelope], Awaitable[None]]
"""Runs inside the consumer's transaction; raise to have the event redelivered."""

T = TypeVar("T")


@dataclass(frozen=True)
class PreparedHandler(Generic[T]):
    """A handler in two parts: ``prepare`` outside the transaction, ``apply`` inside it with
    what ``prepare`` returned (module doc). ``prepare`` must be idempotent."""

    prepare: Callable[[Envelope], Awaitable[T]]
    apply: Callable[[AsyncSession, Envelope, T], Awaitable[None]]


@dataclass(frozen=True)
class BatchHandler:
    """Handles a run of events of one type in one call, inside the consumer's transaction
    (module doc): ``apply`` must apply every event it is given, or raise."""

    apply: Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]]


@dataclass(frozen=True)
class PreparedBatchHandler(Generic[T]):
    """Both of the above: each event is prepared as by a ``PreparedHandler``, and ``apply``
    takes a run of them in one call, each event with what its ``prepare`` returned."""

    prepare: Callable[[Envelope], Awaitable[T]]
    apply: Callable[[AsyncSession, Sequence[tuple[Envelope, T]]], Awaitable[None]]


AnyHandler = EventHandler | PreparedHandler[Any] | BatchHandler | PreparedBatchHandler[Any]
_PREPARED = (PreparedHandler, PreparedBatchHandler)
_BATCHED = (BatchHandler, PreparedBatchHandler)

REFUSAL_REASON_HEADER = "x-refusal-reason"
REFUSED_ROUTING_KEY_HEADER = "x-refused-routing-key"  # what a replay publishes it under
INBOX_PRUNE_INTERVAL_SECONDS = 300.0
DATABASE_RETRY_SECONDS = 30.0  # in-place retries while the database is away, per message
_RETRY_PAUSE_FIRST, _RETRY_PAUSE_MAX = 0.1, 2.0


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
        self._inbox: Table = inbox_table(consumer.inbox)
        # Strong references: robust channels restore only what is still referenced.
        self._channel: AbstractRobustChannel | None = None
        self._declared: DeclaredQueue | None = None
        self._consumer_tag: str | None = None
        self._waiting: deque[asyncio.Future[_Delivery | None]] = deque()
        self._in_flight = 0  # delivered and not yet settled: waiting or in a batch
        self._batch_runners = 0
        self._runner_tasks: set[asyncio.Task[None]] = set()
        self._pruner: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._linger = Linger(settings.consumer_linger_ms)
        self._events_exchange = events_exchange_name(settings)

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
        if self._pruner is None:
            self._pruner = asyncio.create_task(
                self._prune_periodically(), name=f"{self.consumer.name} inbox pruning"
            )

    async def stop(self, *, drain_seconds: float | None = None) -> None:
        """Stop taking messages, then wait (bounded) for those in flight to finish."""
        pruner, self._pruner = self._pruner, None
        if pruner is not None:
            pruner.cancel()
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
                "%s: %d messages still in flight at stop", self.consumer.name, self._in_flight
            )

    async def prune_inbox(self) -> int:
        """Delete this consumer's inbox keys older than the retention; the number deleted."""
        cutoff = datetime.now(UTC) - timedelta(hours=self.settings.inbox_retention_hours)
        return await prune_inbox(
            self.sessionmaker, table=self._inbox, consumer=self.consumer.name, older_than=cutoff
        )

    async def _prune_periodically(self) -> None:
        while True:
            await asyncio.sleep(INBOX_PRUNE_INTERVAL_SECONDS)
            try:
                deleted = await self.prune_inbox()
            except Exception as exc:  # the database may be away: next time
                logger.warning("%s: inbox pruning failed: %r", self.consumer.name, exc)
            else:
                if deleted:
                    logger.info("%s: pruned %d inbox keys", self.consumer.name, deleted)

    # -- deliveries into batches --------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Only decodes the delivery (and starts a prepared handler's preparation) and queues
        # it for the batch runners: it returns at once, and the delivery counts as in flight
        # until a batch settles it.
        self._waiting.append(await self._arrive(message))
        self._in_flight += 1
        self._idle.clear()
        if self._batch_runners < self.consumer.concurrency:
            self._batch_runners += 1
            runner = asyncio.create_task(self._run_batches(), name=f"{self.consumer.name} batches")
            self._runner_tasks.add(runner)  # a strong reference until it ends
            runner.add_done_callback(self._runner_tasks.discard)

    async def _arrive(self, message: AbstractIncomingMessage) -> asyncio.Future[_Delivery | None]:
        """The delivery, ready to handle, or None once it was rejected or given back: done at
        once, or when its preparation ends (it starts now, not when a batch takes it)."""
        delivery = await self._decode(message)
        if isinstance(delivery, _Refusal):
            # Settled by a task the batches wait for in delivery order, as a preparation is:
            # an ack of a later batch, covering this delivery, must not come before its copy.
            return asyncio.ensure_future(self._refuse(message, delivery.reason))
        if delivery is not None and isinstance(delivery.handler, _PREPARED):
            return asyncio.ensure_future(self._prepare(delivery))
        ready: asyncio.Future[_Delivery | None] = asyncio.get_running_loop().create_future()
        ready.set_result(delivery)
        return ready

    async def _run_batches(self) -> None:
        try:
            # A runner starts when a delivery finds the consumer idle; while batches come
            # close together, the deliveries right behind it share its batch.
            await self._linger.wait()
            while self._waiting:
                # The next batch: the oldest delivery, once ready, and every one after it
                # that is ready too. A delivery still preparing ends the batch, so one slow
                # call delays only the deliveries behind it, never those ready before it.
                taken = [self._waiting.popleft()]
                try:
                    first = await taken[0]
                    waiting, most = self._waiting, self.consumer.max_batch
                    while waiting and len(taken) < most and waiting[0].done():
                        taken.append(waiting.popleft())
                    batch = [first, *(ready.result() for ready in taken[1:])]
                    await self.handle_batch([delivery for delivery in batch if delivery])
                except Exception:  # handle_batch settles everything itself; never lose a runner
                    logger.exception("%s: unexpected error handling a batch", self.consumer.name)
                finally:
                    self._in_flight -= len(taken)
                    if self._in_flight == 0:
                        self._idle.set()
                    self._linger.batch_ended()
        finally:
            self._batch_runners -= 1

    # -- handling ----------------------------------------------------------------------------

    async def handle_batch(self, deliveries: Sequence[_Delivery]) -> None:
        """Process decoded (and prepared) deliveries to the end, in one transaction when all
        succeed (module doc)."""
        pending = list(deliveries)
        while len(pending) > 1:
            failure = await self._try_as_one_transaction(pending)
            if failure is None:
                return
            delivery, error = failure
            if delivery is None or _not_one_events_fault(error):
                break  # not one event's fault (a deadlock between batches, say): one by one
            # That event's handler raised: it goes back (as it would alone) and the others
            # try again together, so it is run once per delivery and theirs are not delayed.
            await self._give_back(delivery, error)
            pending.remove(delivery)
        for item in pending:
            await self._handle_alone(item)

    async def _decode(self, message: AbstractIncomingMessage) -> _Delivery | _Refusal | None:
        """The delivery with its event and handler, a refusal to settle, or None once a
        malformed one is rejected."""
        label = self.consumer.name
        try:
            event = decode(message.body)
            check_provenance(event, routing_key=self._routing_key(message))
            handler = self.consumer.handlers.get(event.type)
            if handler is None:
                raise MalformedEventError(f"{label} has no handler for {event.type}")
        except RefusedEventError as exc:
            return _Refusal(str(exc))
        except MalformedEventError as exc:
            logger.error(
                "%s: dead-lettering malformed message %s: %s", label, message.message_id, exc
            )
            metrics.EVENTS_DEAD_LETTERED.labels(label, "malformed").inc()
            await self._settle(message.reject(requeue=False))
            return None
        return _Delivery(message, event, handler)

    def _routing_key(self, message: AbstractIncomingMessage) -> str | None:
        """The routing key the envelope's type must equal, or None for a message put straight
        into the queue through the default exchange (a DLQ replay to its source queue: only
        an operator may publish there, see docs/deployment.md)."""
        if message.exchange == self._events_exchange:
            return message.routing_key or ""
        if not message.exchange:
            return None
        return f"{message.exchange}:{message.routing_key}"  # another exchange: never the type

    async def _refuse(self, message: AbstractIncomingMessage, reason: str) -> _Delivery | None:
        """Dead-letter a forged envelope with ``reason``: a copy goes to this queue's DLQ (a
        rejection would only say "rejected"), then the delivery is acked. Should the copy
        fail, the delivery is rejected and the queue dead-letters it without the reason."""
        label = self.consumer.name
        logger.error("%s: refusing message %s: %s", label, message.message_id, reason)
        metrics.EVENTS_DEAD_LETTERED.labels(label, "refused").inc()
        try:
            assert self._channel is not None  # declared before anything is consumed
            exchange = await self._channel.get_exchange(
                dead_letter_exchange_name(self.settings), ensure=False
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
            # The DLX routes by source queue name; the channel awaits the broker's confirm.
            await exchange.publish(copy, routing_key=queue_name(self.settings, label))
        except Exception as exc:
            logger.warning("%s: could not copy a refused message to the DLQ: %r", label, exc)
            await self._settle(message.reject(requeue=False))
            return None
        await self._settle(message.ack())
        return None

    async def _prepare(self, delivery: _Delivery) -> _Delivery | None:
        """Run a prepared handler's ``prepare``, outside any transaction; the delivery with
        its result, or None once a failed preparation has returned the delivery."""
        handler = delivery.handler
        if not isinstance(handler, _PREPARED):
            return delivery
        event = delivery.event
        token = request_id_var.set(event.correlation_id)
        try:
            with preparing(self.consumer.name, delivery):  # a span (shared.tracing)
                prepared = await self._while_database_away(
                    lambda: handler.prepare(event), what=f"preparing {event.type} {event.id}"
                )
        except Exception as exc:
            await self._give_back(delivery, exc)
            return None
        finally:
            request_id_var.reset(token)
        return replace(delivery, prepared=prepared)

    async def _try_as_one_transaction(
        self, batch: list[_Delivery]
    ) -> tuple[_Delivery | None, Exception] | None:
        """Handle the batch in one transaction and ack it: None. Otherwise nothing is settled
        or committed; the delivery whose handler raised (None if none did) and the error."""
        started = time.perf_counter()
        failed: list[_Delivery] = []
        try:
            handled = await self._while_database_away(
                lambda: self._run_handlers(batch, failed=failed), what=f"a batch of {len(batch)}"
            )
        except Exception as exc:
            logger.info("%s: batch of %d failed: %r", self.consumer.name, len(batch), exc)
            return (failed[0] if failed else None), exc
        elapsed = time.perf_counter() - started
        for new in handled:
            self._count_success(new, elapsed)
        if self.consumer.concurrency == 1:
            # One runner settles deliveries in order on a channel of its own: every earlier
            # delivery is settled already, so one ack of the last covers the batch.
            await self._settle(batch[-1].message.ack(multiple=True))
        else:
            for delivery in batch:
                await self._settle(delivery.message.ack())
        return None

    async def _handle_alone(self, delivery: _Delivery) -> None:
        event = delivery.event
        started = time.perf_counter()
        try:
            handled = await self._while_database_away(
                lambda: self._run_handlers([delivery]), what=f"{event.type} {event.id}"
            )
        except Exception as exc:
            await self._give_back(delivery, exc)
            return
        self._count_success(handled[0], time.perf_counter() - started)
        await self._settle(delivery.message.ack())

    async def _give_back(self, delivery: _Delivery, error: Exception) -> None:
        """Return a delivery whose handler failed: the queue counts it and, past the limit,
        dead-letters it."""
        label, event, message = self.consumer.name, delivery.event, delivery.message
        metrics.EVENTS_FAILED.labels(label).inc()
        if self._is_last_delivery(message):
            metrics.EVENTS_DEAD_LETTERED.labels(label, "delivery_limit").inc()
        logger.error("%s: handler failed for %s %s", label, event.type, event.id, exc_info=error)
        await self._settle(message.nack(requeue=True))

    def _count_success(self, handled: bool, seconds: float) -> None:
        label = self.consumer.name
        metrics.HANDLER_LATENCY.labels(label).observe(seconds)
        (metrics.EVENTS_CONSUMED if handled else metrics.EVENTS_DUPLICATE).labels(label).inc()

    async def _while_database_away(self, attempt: Callable[[], Awaitable[T]], *, what: str) -> T:
        """``attempt()``, retried in place while the database is unavailable (bounded, and
        not once the consumer is stopping)."""
        deadline = time.monotonic() + DATABASE_RETRY_SECONDS
        pause = _RETRY_PAUSE_FIRST
        while True:
            try:
                return await attempt()
            except Exception as exc:
                stopping = self._consumer_tag is None
                if not database_unavailable(exc) or stopping or time.monotonic() >= deadline:
                    raise
                metrics.EVENTS_FAILED.labels(self.consumer.name).inc()
                logger.warning(
                    "%s: database unavailable for %s, retrying in %.1fs: %r",
                    self.consumer.name,
                    what,
                    pause,
                    exc,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_PAUSE_MAX)

    async def _run_handlers(
        self, batch: list[_Delivery], *, failed: list[_Delivery] | None = None
    ) -> list[bool]:
        """Claim every inbox key and run the handlers of the new events, in one transaction;
        per delivery, False for a duplicate. A delivery whose handler raises is appended to
        ``failed`` before the exception propagates."""
        async with (
            consuming(self.consumer.name, batch),  # spans (shared.tracing.messaging)
            self.sessionmaker() as session,
            session.begin(),
            deferring_events(session),
        ):
            claimed = await claim_events(
                session,
                table=self._inbox,
                events=[(d.event.id, d.event.type) for d in batch],
                consumer=self.consumer.name,
            )
            handled: list[bool] = []
            new: list[_Delivery] = []
            for delivery in batch:
                event_id = delivery.event.id
                is_new = event_id in claimed
                claimed.discard(event_id)  # the same event twice in a batch: handled once
                handled.append(is_new)
                if is_new:
                    new.append(delivery)
            for run in handler_runs(new):
                try:
                    await _apply(session, run)
                except Exception:
                    # A run of one is that event's fault; of several, nobody knows whose.
                    if failed is not None and len(run) == 1:
                        failed.append(run[0])
                    raise
        return handled

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


def handler_runs(deliveries: Sequence[_Delivery]) -> list[list[_Delivery]]:
    """The deliveries in order, cut into what one handler call takes: a run of consecutive
    deliveries with the same batch handler, or one delivery."""
    runs: list[list[_Delivery]] = []
    for delivery in deliveries:
        if (
            runs
            and isinstance(delivery.handler, _BATCHED)
            and runs[-1][-1].handler is delivery.handler
        ):
            runs[-1].append(delivery)
        else:
            runs.append([delivery])
    return runs


async def _apply(session: AsyncSession, run: list[_Delivery]) -> None:
    first = run[0]
    handler = first.handler
    token = request_id_var.set(first.event.correlation_id)  # a run logs as its first event
    try:
        if isinstance(handler, BatchHandler):
            await handler.apply(session, [delivery.event for delivery in run])
        elif isinstance(handler, PreparedBatchHandler):
            await handler.apply(session, [(delivery.event, delivery.prepared) for delivery in run])
        elif isinstance(handler, PreparedHandler):
            await handler.apply(session, first.event, first.prepared)
        else:
            await handler(session, first.event)
    finally:
        request_id_var.reset(token)


# Errors that one event alone might not have met: a serialization failure, a deadlock or a
# lock timeout between transactions that each hold a batch's locks.
_BATCH_CONFLICT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def _not_one_events_fault(exc: BaseException) -> bool:
    """A batching conflict, or the database away past the in-place retries."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(cause, "sqlstate", None) in _BATCH_CONFLICT_SQLSTATES or database_unavailable(
        exc
    )


@dataclass(frozen=True)
class _Delivery:
    message: AbstractIncomingMessage
    event: Envelope
    handler: AnyHandler
    prepared: Any = None  # what a prepared handler's ``prepare`` returned


@dataclass(frozen=True)
class _Refusal:
    reason: str  # why the envelope is refused (no payload values: it reaches logs and DLQ)
