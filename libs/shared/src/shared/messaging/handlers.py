"""Handler kinds: what a consumer calls for an event of a type, and how a run is applied.

- an ``EventHandler`` handles one event in the consumer's transaction;
- a ``PreparedHandler`` splits that in two: ``prepare`` runs on arrival, outside any
  transaction and holding no connection while it waits (a provider call: otherwise the pool,
  not the work, bounds how many are in flight); ``apply`` runs in the transaction with what
  ``prepare`` returned. ``prepare`` must be idempotent: it runs again on a redelivery, and
  for a duplicate the inbox then skips (a batch that is retried is not prepared again);
- a ``BatchHandler`` takes a run of consecutive new events of its type in one call, so its
  effect is one statement for the run (a catalog import). It applies every event or raises;
  when a run of several raises, its events are handled again one per transaction;
- a ``PreparedBatchHandler`` is both: prepared per event, applied a run at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy.ext.asyncio import AsyncSession

from shared.context import request_id_var
from shared.messaging.envelope import Envelope
from shared.tracing.messaging import handling

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
PREPARED = (PreparedHandler, PreparedBatchHandler)
BATCHED = (BatchHandler, PreparedBatchHandler)


@dataclass(frozen=True)
class Delivery:
    """A decoded delivery with the handler for its type."""

    message: AbstractIncomingMessage
    event: Envelope
    handler: AnyHandler
    prepared: Any = None  # what a prepared handler's ``prepare`` returned


def handler_runs(deliveries: Sequence[Delivery]) -> list[list[Delivery]]:
    """The deliveries in order, cut into what one handler call takes: a run of consecutive
    deliveries with the same batch handler, or one delivery."""
    runs: list[list[Delivery]] = []
    for delivery in deliveries:
        if (
            runs
            and isinstance(delivery.handler, BATCHED)
            and runs[-1][-1].handler is delivery.handler
        ):
            runs[-1].append(delivery)
        else:
            runs.append([delivery])
    return runs


async def apply_run(session: AsyncSession, run: list[Delivery]) -> None:
    """One handler call for a run from ``handler_runs``, in the caller's transaction. A run
    of one runs in its event's consumer span; a run of several in the transaction's (the
    batch's, which links every event's: ``shared.tracing.messaging``)."""
    first = run[0]
    token = request_id_var.set(first.event.correlation_id)  # a run logs as its first event
    try:
        within = handling(first.event.id) if len(run) == 1 else None
        if within is None:  # tracing off: this test is all it costs
            await _call(session, run)
        else:
            with within:
                await _call(session, run)
    finally:
        request_id_var.reset(token)


async def _call(session: AsyncSession, run: list[Delivery]) -> None:
    first = run[0]
    handler = first.handler
    if isinstance(handler, BatchHandler):
        await handler.apply(session, [delivery.event for delivery in run])
    elif isinstance(handler, PreparedBatchHandler):
        await handler.apply(session, [(delivery.event, delivery.prepared) for delivery in run])
    elif isinstance(handler, PreparedHandler):
        await handler.apply(session, first.event, first.prepared)
    else:
        await handler(session, first.event)
