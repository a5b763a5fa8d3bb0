"""Batch handlers: a run of events of one type in one call, and what happens when it raises."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.inventory import StockLow
from shared.messaging import BatchHandler, Envelope, PreparedBatchHandler
from shared.messaging.handlers import Delivery, handler_runs

from .conftest import Harness, metric, wait_until
from .test_batching import GATE_SKU, GatedScenario

BAD_SKU = "SKU-ALWAYS-BAD"


class BatchScenario(GatedScenario):
    """The gated consumer of ``test_batching`` with a batch handler: its calls are kept."""

    def __init__(self, harness: Harness, name: str) -> None:
        super().__init__(harness, name)
        self.calls: list[list[uuid.UUID]] = []
        self.applied: Counter[uuid.UUID] = Counter()

    async def handle_many(self, session: AsyncSession, events: Sequence[Envelope]) -> None:
        self.calls.append([event.id for event in events])
        for event in events:
            if event.payload(StockLow).sku == GATE_SKU:
                await self.handle(session, event)  # waits on the gate
            else:
                await self.harness.recording_handler(self.name)(session, event)
        if any(event.payload(StockLow).sku == BAD_SKU for event in events):
            raise ValueError("this run holds an event that is always refused")
        for event in events:
            self.applied[event.id] += 1  # counted only when the call succeeded

    async def start_gated(self) -> None:
        self.consumer = await self.harness.consumer(self.name, BatchHandler(self.handle_many))
        await self.harness.emit(1, sku=GATE_SKU)
        await self.harness.relay()
        await asyncio.wait_for(self._entered.wait(), 30)


async def test_the_events_queued_behind_a_transaction_reach_a_batch_handler_in_one_call(
    harness: Harness,
) -> None:
    name = "batch-handler"
    scenario = BatchScenario(harness, name)
    [waiting] = await scenario.batch_behind_gate((25, "SKU-OK"))
    await wait_until(lambda: harness.applied(name, 26), what="26 handled")

    # After the gate's own call, one call for all (in the relay's order, not the list's).
    assert [sorted(call) for call in scenario.calls[1:]] == [sorted(waiting)]
    effects = await harness.effects(name)
    assert len(effects) == 26
    assert set(effects.values()) == {1}
    assert metric("messaging_events_consumed_total", queue=name) == 26


async def test_a_batch_handler_that_raises_for_a_run_falls_back_to_one_event_at_a_time(
    harness: Harness,
) -> None:
    name = "batch-handler-failing"
    scenario = BatchScenario(harness, name)
    before, bad, after = await scenario.batch_behind_gate(
        (5, "SKU-OK"), (1, BAD_SKU), (5, "SKU-OK")
    )
    sound = before + after
    await wait_until(lambda: harness.applied(name, 11), what="the gate and ten sound events")

    # The run of eleven raised as one; each was then handled alone: the ten sound events
    # applied exactly once, the bad one refused on every delivery and dead-lettered.
    assert sorted(scenario.calls[1]) == sorted(before + bad + after)
    assert all(scenario.applied[event_id] == 1 for event_id in sound)
    assert scenario.applied[bad[0]] == 0
    await wait_until(lambda: _dead_lettered(name), what="the always-refused event dead-lettered")
    effects = await harness.effects(name)
    assert len(effects) == 11  # the gate and the ten sound events, once each
    assert set(effects.values()) == {1}
    assert bad[0] not in effects
    # Alone on each of its deliveries (x-delivery-limit=2: three), after the failed run.
    assert scenario.calls.count(bad) == harness.settings.broker_delivery_limit + 1


class PreparedBatchScenario(BatchScenario):
    """The batch scenario with each event prepared first; ``apply`` gets both."""

    def __init__(self, harness: Harness, name: str) -> None:
        super().__init__(harness, name)
        self.prepared: Counter[uuid.UUID] = Counter()
        self.given: dict[uuid.UUID, str] = {}

    async def prepare(self, event: Envelope) -> str:
        self.prepared[event.id] += 1
        return f"prepared {event.id}"

    async def apply_many(
        self, session: AsyncSession, prepared: Sequence[tuple[Envelope, str]]
    ) -> None:
        self.given.update((event.id, value) for event, value in prepared)
        await self.handle_many(session, [event for event, _ in prepared])

    async def start_gated(self) -> None:
        handler = PreparedBatchHandler(self.prepare, self.apply_many)
        self.consumer = await self.harness.consumer(self.name, handler)
        await self.harness.emit(1, sku=GATE_SKU)
        await self.harness.relay()
        await asyncio.wait_for(self._entered.wait(), 30)


async def test_a_prepared_batch_handler_gets_a_run_in_one_call_with_each_preparation(
    harness: Harness,
) -> None:
    name = "prepared-batch-handler"
    scenario = PreparedBatchScenario(harness, name)
    [waiting] = await scenario.batch_behind_gate((25, "SKU-OK"))
    await wait_until(lambda: harness.applied(name, 26), what="26 handled")

    assert [sorted(call) for call in scenario.calls[1:]] == [sorted(waiting)]
    assert all(scenario.prepared[event_id] == 1 for event_id in waiting)
    assert all(scenario.given[event_id] == f"prepared {event_id}" for event_id in waiting)
    assert set((await harness.effects(name)).values()) == {1}


async def _dead_lettered(name: str) -> bool:
    dead = metric("messaging_events_dead_lettered_total", queue=name, reason="delivery_limit")
    return dead == 1


def test_runs_join_consecutive_events_of_one_batch_handler_and_keep_delivery_order() -> None:
    many = BatchHandler(_nothing_many)
    other = PreparedBatchHandler(_nothing_prepared, _nothing_prepared_many)

    def delivery(handler: object) -> Delivery:
        event = Envelope.new(StockLow(sku="S", available=1, reorder_point=1))
        return Delivery(message=None, event=event, handler=handler)  # type: ignore[arg-type]

    a1, a2, b, a3, c1, c2, d1, d2 = (
        delivery(many),
        delivery(many),
        delivery(_nothing_one),
        delivery(many),
        delivery(other),
        delivery(other),
        delivery(_nothing_one),
        delivery(_nothing_one),
    )
    runs = handler_runs([a1, a2, b, a3, c1, c2, d1, d2])
    assert runs == [[a1, a2], [b], [a3], [c1, c2], [d1], [d2]]


async def _nothing_many(session: AsyncSession, events: Sequence[Envelope]) -> None:
    return None


async def _nothing_one(session: AsyncSession, event: Envelope) -> None:
    return None


async def _nothing_prepared(event: Envelope) -> None:
    return None


async def _nothing_prepared_many(
    session: AsyncSession, prepared: Sequence[tuple[Envelope, None]]
) -> None:
    return None
