"""Batches: deliveries that queue up behind a busy transaction are handled in the next one,
and a failure in a batch costs no event more than a failure alone would. And the inbox's
upkeep: old keys are pruned."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.inventory import StockLow
from shared.messaging import Envelope, RunningConsumer
from shared.messaging.broker import OutgoingMessage
from shared.messaging.dlq import count_messages
from shared.messaging.inbox import inbox_table
from shared.messaging.outbox import deferring_events

from .conftest import Harness, OutboxEvent, ProcessedEvent, metric, wait_until

GATE_SKU = "SKU-GATE"
FOLLOW_UP_SKU = "SKU-FOLLOW-UP"


class GatedScenario:
    """A consumer whose first event holds its transaction open until ``release()``, so the
    deliveries that follow wait for it and form the next batch."""

    def __init__(self, harness: Harness, name: str) -> None:
        self.harness = harness
        self.name = name
        self.attempts: Counter[uuid.UUID] = Counter()
        self.transaction_of: dict[uuid.UUID, int] = {}
        self.fail_first_attempt: set[str] = set()  # skus whose handler raises once
        self.first_failure: Callable[[], Exception] = lambda: ValueError("refused once")
        self.first_failure_of: dict[str, Callable[[], Exception]] = {}  # a sku's own failure
        self._entered = asyncio.Event()
        self._gate = asyncio.Event()
        self.consumer: RunningConsumer | None = None

    async def handle(self, session: AsyncSession, event: Envelope) -> None:
        sku = event.payload(StockLow).sku
        self.attempts[event.id] += 1
        if sku == GATE_SKU:
            self._entered.set()
            await self._gate.wait()
        self.transaction_of[event.id] = (
            await session.execute(text("SELECT txid_current()"))
        ).scalar_one()
        await self.harness.recording_handler(self.name)(session, event)
        if sku in self.fail_first_attempt and self.attempts[event.id] == 1:
            raise self.first_failure()
        if sku in self.first_failure_of and self.attempts[event.id] == 1:
            raise self.first_failure_of[sku]()

    async def start_gated(self) -> None:
        """Start the consumer and let its first transaction block on the gate."""
        self.consumer = await self.harness.consumer(self.name, self.handle)
        await self.harness.emit(1, sku=GATE_SKU)
        await self.harness.relay()
        await asyncio.wait_for(self._entered.wait(), 30)

    async def queue_up(self, publish: Callable[[], Awaitable[object]]) -> None:
        """Publish while the gate holds, until every message waits inside the consumer."""
        await publish()
        assert self.consumer is not None
        channel = await self.harness.brokers[0].channel()
        queue = self.consumer.queue.name

        async def all_delivered() -> bool:
            return await self.harness.unsent() == 0 and await count_messages(channel, queue) == 0

        await wait_until(all_delivered, what="every message delivered to the consumer")
        await channel.close()

    def release(self) -> None:
        self._gate.set()

    async def batch_behind_gate(self, *groups: tuple[int, str]) -> list[list[uuid.UUID]]:
        """Start gated, queue up ``count`` events of each ``(count, sku)`` group behind the
        gate (each group committed as one transaction), then release it: each group's ids."""
        await self.start_gated()
        ids: list[list[uuid.UUID]] = []

        async def publish() -> None:
            for count, sku in groups:
                ids.append(await self.harness.emit(count, sku=sku))

        await self.queue_up(publish)
        self.release()
        return ids


async def test_deliveries_waiting_behind_a_transaction_share_the_next_one(
    harness: Harness,
) -> None:
    scenario = GatedScenario(harness, "batched")
    [waiting] = await scenario.batch_behind_gate((20, "SKU-OK"))
    await wait_until(lambda: harness.applied("batched", 21), what="21 handled")

    assert len({scenario.transaction_of[event_id] for event_id in waiting}) == 1
    assert all(scenario.attempts[event_id] == 1 for event_id in waiting)
    effects = await harness.effects("batched")
    assert len(effects) == 21
    assert set(effects.values()) == {1}
    assert metric("messaging_events_consumed_total", queue="batched") == 21


async def test_a_failing_event_goes_back_alone_and_the_rest_of_its_batch_commits_together(
    harness: Harness,
) -> None:
    name = "batched-failure"
    scenario = GatedScenario(harness, name)
    scenario.fail_first_attempt.add("SKU-FLAKY")
    before, flaky, after = await scenario.batch_behind_gate(
        (10, "SKU-OK"), (1, "SKU-FLAKY"), (10, "SKU-OK")
    )
    sound = before + after
    await wait_until(lambda: harness.applied(name, 22), what="22 handled")

    # The flaky event ran once per delivery: refused, returned, redelivered, applied.
    assert scenario.attempts[flaky[0]] == 2
    assert metric("messaging_events_failed_total", queue=name) == 1
    # The ten before it ran in the failed attempt and again; none ran more than that, and
    # all twenty committed in one transaction without it.
    assert all(scenario.attempts[event_id] <= 2 for event_id in sound)
    assert len({scenario.transaction_of[event_id] for event_id in sound}) == 1
    effects = await harness.effects(name)
    assert len(effects) == 22
    assert set(effects.values()) == {1}


async def test_the_event_given_back_is_the_one_at_fault_in_the_attempt_that_failed(
    harness: Harness,
) -> None:
    # The database drops inside the first event's handler (retried in place); in the retry
    # that event is sound and the next one's handler raises: that one goes back, and the
    # first commits with the rest of the batch.
    name = "batched-blame"
    scenario = GatedScenario(harness, name)
    scenario.first_failure_of["SKU-BLIP"] = lambda: DBAPIError(
        "INSERT", {}, ConnectionRefusedError("the database went away")
    )
    scenario.first_failure_of["SKU-FLAKY"] = lambda: ValueError("refused once")
    [blip], [flaky], sound = await scenario.batch_behind_gate(
        (1, "SKU-BLIP"), (1, "SKU-FLAKY"), (3, "SKU-OK")
    )
    await wait_until(lambda: harness.applied(name, 6), what="6 handled")

    assert scenario.attempts[blip] == 3  # cut short, rolled back with the flaky one, applied
    assert scenario.attempts[flaky] == 2  # refused once, redelivered, applied alone
    committed_with_the_batch = {scenario.transaction_of[event_id] for event_id in [blip, *sound]}
    assert len(committed_with_the_batch) == 1
    assert scenario.transaction_of[flaky] not in committed_with_the_batch
    # The in-place retry and the one event given back.
    assert metric("messaging_events_failed_total", queue=name) == 2


class _DeadlockDetected(Exception):
    sqlstate = "40P01"


async def test_a_deadlock_in_a_batch_falls_back_to_one_transaction_per_event(
    harness: Harness,
) -> None:
    # Two consumers' batches that lock rows in different orders can deadlock; Postgres then
    # aborts one. That is no event's fault: nothing is returned, each event runs alone.
    name = "batched-deadlock"
    scenario = GatedScenario(harness, name)
    scenario.fail_first_attempt.add("SKU-VICTIM")
    scenario.first_failure = lambda: DBAPIError("UPDATE", {}, _DeadlockDetected("deadlock"))
    sound, victim = await scenario.batch_behind_gate((5, "SKU-OK"), (1, "SKU-VICTIM"))
    waiting = sound + victim
    await wait_until(lambda: harness.applied(name, 7), what="7 handled")

    effects = await harness.effects(name)
    assert len(effects) == 7
    assert set(effects.values()) == {1}
    assert metric("messaging_events_failed_total", queue=name) == 0  # nothing returned
    assert all(scenario.attempts[event_id] == 2 for event_id in waiting)  # batch, then alone
    assert len({scenario.transaction_of[event_id] for event_id in waiting}) == len(waiting)


async def test_the_same_event_twice_in_a_batch_is_applied_once(harness: Harness) -> None:
    name = "batched-duplicate"
    scenario = GatedScenario(harness, name)
    await scenario.start_gated()
    event = Envelope.new(StockLow(sku="SKU-TWICE", available=1, reorder_point=5))
    message = OutgoingMessage(str(event.id), event.type, event.to_bytes())

    async def publish() -> None:
        publisher = await harness.brokers[0].publisher()
        assert await publisher.publish_many([message, message]) == [None, None]

    await scenario.queue_up(publish)
    scenario.release()
    await wait_until(lambda: harness.applied(name, 2), what="both events handled")
    await wait_until(
        lambda: _metric_is("messaging_events_duplicate_total", name, 1), what="one duplicate"
    )

    assert scenario.attempts[event.id] == 1
    effects = await harness.effects(name)
    assert effects[event.id] == 1
    assert len(effects) == 2
    assert metric("messaging_events_consumed_total", queue=name) == 2


class EmittingScenario(GatedScenario):
    """The gated consumer whose handler also emits a follow-up event caused by each event
    (the follow-ups come back to it and are only recorded)."""

    async def handle(self, session: AsyncSession, event: Envelope) -> None:
        if event.payload(StockLow).sku != FOLLOW_UP_SKU:
            follow_up = StockLow(sku=FOLLOW_UP_SKU, available=0, reorder_point=1)
            await self.harness.outbox.add(session, event.caused(follow_up))
        await super().handle(session, event)


async def test_a_batch_writes_its_handlers_events_once_in_its_own_transaction(
    harness: Harness,
) -> None:
    name = "batched-emitting"
    scenario = EmittingScenario(harness, name)
    scenario.fail_first_attempt.add("SKU-FLAKY")
    sound, flaky = await scenario.batch_behind_gate((10, "SKU-OK"), (1, "SKU-FLAKY"))
    # The gate, ten sound events, the flaky one, and a follow-up of each of those twelve.
    await wait_until(lambda: harness.applied(name, 24), what="24 handled")

    causes = [str(event_id) for event_id in [*sound, *flaky]]
    # ``created_at`` is ``now()``, its transaction's start: the writer's, where ``xmin`` would
    # name the relay's transaction that marked the row sent (one mark may cover rows of
    # several writers).
    statement = select(OutboxEvent.body["causation_id"].astext, OutboxEvent.created_at).where(
        OutboxEvent.body["causation_id"].astext.in_(causes)
    )
    async with harness.engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    caused_by = Counter(cause for cause, _ in rows)
    # One follow-up per event: the failed attempt's (written with its batch) rolled back.
    assert caused_by == dict.fromkeys(causes, 1)
    written_in = {cause: started for cause, started in rows}
    # The ten sound events' follow-ups were written in the transaction of their batch.
    assert len({written_in[str(event_id)] for event_id in sound}) == 1
    assert written_in[str(flaky[0])] != written_in[str(sound[0])]


async def test_events_added_while_deferring_are_written_at_the_end_or_not_at_all(
    harness: Harness,
) -> None:
    events = [
        Envelope.new(StockLow(sku="SKU-DEFERRED", available=n, reorder_point=1)) for n in range(3)
    ]
    ids = [event.id for event in events]
    count = select(func.count()).where(OutboxEvent.id.in_(ids))

    async with harness.sessionmaker() as session, session.begin():
        async with deferring_events(session):
            await harness.outbox.add(session, events[0])
            async with deferring_events(session):  # nested: the outer block writes
                await harness.outbox.add_many(session, events[1:])
            assert (await session.execute(count)).scalar_one() == 0  # collected only
        assert (await session.execute(count)).scalar_one() == 3  # one statement, same transaction

    others = [Envelope.new(StockLow(sku="SKU-DEFERRED", available=9, reorder_point=1))]
    async with harness.sessionmaker() as session, session.begin():

        async def failing_block() -> None:
            async with deferring_events(session):
                await harness.outbox.add_many(session, others)
                raise ValueError("handler failed")

        with pytest.raises(ValueError, match="handler failed"):
            await failing_block()
        # Nothing was written for the failed block, and adding writes at once again.
        assert (
            await session.execute(select(func.count()).where(OutboxEvent.id == others[0].id))
        ).scalar_one() == 0
        await harness.outbox.add_many(session, others)
        assert (
            await session.execute(select(func.count()).where(OutboxEvent.id == others[0].id))
        ).scalar_one() == 1
        await session.rollback()


async def _metric_is(name: str, queue: str, value: float) -> bool:
    return metric(name, queue=queue) == value


async def test_inbox_keys_older_than_the_retention_are_pruned_for_their_consumer_only(
    harness: Harness,
) -> None:
    consumer = await harness.consumer("pruned", start=False)
    table = inbox_table(ProcessedEvent)
    old = datetime.now(UTC) - timedelta(hours=harness.settings.inbox_retention_hours + 1)
    rows = [
        {"event_id": uuid.uuid4(), "consumer": name, "event_type": "t", "processed_at": at}
        for name, at in [("pruned", old)] * 3
        + [("pruned", datetime.now(UTC))] * 2
        + [("another", old)] * 2
    ]
    async with harness.engine.begin() as connection:
        await connection.execute(insert(table), rows)

    assert await consumer.prune_inbox() == 3

    async with harness.engine.connect() as connection:
        left = (
            await connection.execute(
                select(table.c.consumer, func.count())
                .where(table.c.event_id.in_([row["event_id"] for row in rows]))
                .group_by(table.c.consumer)
            )
        ).all()
    assert dict(left) == {"pruned": 2, "another": 2}
