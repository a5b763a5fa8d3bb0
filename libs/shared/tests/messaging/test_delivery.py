"""End-to-end guarantees: outbox → relay → broker → consumer → inbox, on the real servers."""

from __future__ import annotations

import asyncio
from collections import Counter

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.inventory import StockLow
from shared.db import (
    create_engine,
    create_sessionmaker,
    database_unavailable,
    driver_connection,
)
from shared.messaging import Envelope, MalformedEventError, OutboxRelay, PreparedHandler, decode
from shared.messaging.dlq import count_messages, peek, replay
from shared.messaging.relay import PublishFailedError
from shared.messaging.topology import queue_name

from .conftest import Harness, OutboxEvent, metric, wait_until


async def test_event_committed_before_a_crash_is_published_by_the_next_relay(
    harness: Harness,
) -> None:
    await harness.consumer("crash-before-publish")
    # Committed while no relay runs: the state a crash right after commit leaves behind.
    ids = await harness.emit(20)
    assert await harness.unsent() == 20

    await harness.relay()
    await wait_until(lambda: harness.applied("crash-before-publish", 20), what="20 handled")

    assert await harness.effects("crash-before-publish") == dict.fromkeys(ids, 1)
    await wait_until(lambda: _none_unsent(harness), what="all marked sent")


async def _none_unsent(harness: Harness) -> bool:
    return await harness.unsent() == 0


async def test_publication_repeated_after_a_crash_before_marking_is_absorbed_by_the_inbox(
    harness: Harness,
) -> None:
    name = "crash-after-publish"
    await harness.consumer(name)
    ids = await harness.emit(10)

    # A relay that published and confirmed, then died before marking: roll back its batch.
    crashed = await harness.broker()
    publisher = await crashed.publisher()
    async with harness.engine.connect() as connection, connection.begin() as transaction:
        relay = OutboxRelay(
            settings=harness.settings, engine=harness.engine, broker=crashed, outbox=harness.outbox
        )
        claimed = await relay.claim(await driver_connection(connection))
        assert await publisher.publish_many(claimed) == [None] * 10
        await transaction.rollback()
    assert await harness.unsent() == 10

    await harness.relay()
    await wait_until(lambda: _none_unsent(harness), what="all marked sent")
    await wait_until(
        lambda: _metric_reaches("messaging_events_duplicate_total", name, 10),
        what="10 duplicates skipped",
    )
    assert await harness.effects(name) == dict.fromkeys(ids, 1)
    assert metric("messaging_events_consumed_total", queue=name) == 10
    assert metric("messaging_events_duplicate_total", queue=name) == 10


async def _metric_reaches(name: str, queue: str, value: float) -> bool:
    return metric(name, queue=queue) >= value


async def test_transient_handler_failure_is_redelivered_then_applied_once(
    harness: Harness,
) -> None:
    name = "transient"
    attempts: Counter[str] = Counter()
    record = harness.recording_handler(name)

    async def fails_first_time(session: AsyncSession, event: Envelope) -> None:
        attempts[str(event.id)] += 1
        await record(session, event)  # written, then rolled back by the failure below
        if attempts[str(event.id)] == 1:
            raise ConnectionError("downstream hiccup")

    await harness.consumer(name, fails_first_time)
    ids = await harness.emit(5)
    await harness.relay()
    await wait_until(lambda: harness.applied(name, 5), what="5 handled")

    assert await harness.effects(name) == dict.fromkeys(ids, 1)
    assert attempts == Counter({str(i): 2 for i in ids})
    assert metric("messaging_events_failed_total", queue=name) == 5
    assert metric("messaging_events_redelivered_total", queue=name) == 5


async def test_poison_event_is_dead_lettered_after_the_delivery_limit_while_others_flow(
    harness: Harness,
) -> None:
    name = "poison"
    attempts: Counter[str] = Counter()
    healed = False
    record = harness.recording_handler(name)

    async def refuses_poison(session: AsyncSession, event: Envelope) -> None:
        sku = event.payload(StockLow).sku
        attempts[sku] += 1
        if sku == "SKU-POISON" and not healed:
            raise ValueError("cannot handle this one")
        await record(session, event)

    consumer = await harness.consumer(name, refuses_poison)
    [poison] = await harness.emit(1, sku="SKU-POISON")
    good = await harness.emit(10)
    await harness.relay()

    dlq = consumer.queue.name + ".dlq"
    broker = harness.brokers[0]
    channel = await broker.channel()
    await wait_until(lambda: _count(channel, dlq, 1), what="poison in the DLQ")
    await wait_until(lambda: harness.applied(name, 10), what="good events handled")

    # x-delivery-limit=2 means 3 deliveries, then the dead-letter queue.
    assert attempts["SKU-POISON"] == 3
    assert await harness.effects(name) == dict.fromkeys(good, 1)
    assert metric("messaging_events_dead_lettered_total", queue=name, reason="delivery_limit") == 1

    [letter] = await peek(channel, dlq, limit=5)
    assert (letter.message_id, letter.reason) == (str(poison), "delivery_limit")
    assert letter.routing_key == "inventory.stock_low"
    await channel.close()  # gives the peeked message back to the DLQ

    healed = True
    assert await replay(broker, queue=dlq) == 1
    await wait_until(lambda: harness.applied(name, 11), what="replayed poison handled")
    assert await harness.effects(name) == dict.fromkeys([*good, poison], 1)
    check = await broker.channel()
    assert await _count(check, dlq, 0)


async def _count(channel: AbstractChannel, queue: str, expected: int) -> bool:
    return await count_messages(channel, queue) == expected


async def test_malformed_messages_go_to_the_dlq_without_a_redelivery_loop(
    harness: Harness,
) -> None:
    name = "malformed"
    handled: list[Envelope] = []

    async def handler(session: AsyncSession, event: Envelope) -> None:
        handled.append(event)

    consumer = await harness.consumer(name, handler)
    broker = harness.brokers[0]
    channel = await broker.channel()
    target = queue_name(harness.settings, name)
    bodies = [
        b"not json",
        b'["an array"]',
        b'{"id": "x", "type": "inventory.stock_low", "version": 1}',  # no data, bad id
        b'{"id": "0190a0a0-0000-7000-8000-000000000000", "type": "inventory.unheard_of",'
        b' "version": 1, "occurred_at": "2026-01-01T00:00:00Z", "producer": "x", "data": {}}',
        Envelope.new(_stock_low()).to_bytes().replace(b'"version":1', b'"version":9'),
    ]
    for body in bodies:
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=target)

    dlq = consumer.queue.name + ".dlq"
    await wait_until(lambda: _count(channel, dlq, len(bodies)), what="all in the DLQ")
    assert handled == []
    assert metric("messaging_events_dead_lettered_total", queue=name, reason="malformed") == 5
    assert metric("messaging_events_failed_total", queue=name) == 0

    letters = await peek(channel, dlq, limit=10)
    assert sorted(letter.body for letter in letters) == sorted(bodies)
    assert {(letter.reason, letter.deaths) for letter in letters} == {("rejected", 1)}


def _stock_low() -> StockLow:
    return StockLow(sku="SKU-X", available=1, reorder_point=2)


def test_malformed_reason_names_fields_but_never_echoes_their_values() -> None:
    body = Envelope.new(_stock_low()).to_bytes().replace(b'"SKU-X"', b'["tok_secret_4242"]')
    with pytest.raises(MalformedEventError) as caught:
        decode(body)
    assert "sku: Input should be a valid string" in str(caught.value)
    assert "tok_secret_4242" not in str(caught.value)


class _TooManyConnections(Exception):
    sqlstate = "53300"


async def test_a_database_away_for_longer_than_the_delivery_limit_sends_nothing_to_the_dlq(
    harness: Harness,
) -> None:
    # Found by the platform's fault tests: with the server out of connection slots, every
    # delivery failed at once and sound events landed in the DLQ, leaving stock reserved.
    name = "database-away"
    attempts: Counter[str] = Counter()
    record = harness.recording_handler(name)

    async def database_refuses_four_times(session: AsyncSession, event: Envelope) -> None:
        attempts[str(event.id)] += 1
        if attempts[str(event.id)] <= 4:  # more than x-delivery-limit=2 allows deliveries
            raise DBAPIError("SELECT 1", {}, _TooManyConnections("no slots left"))
        await record(session, event)

    consumer = await harness.consumer(name, database_refuses_four_times)
    ids = await harness.emit(3)
    await harness.relay()
    await wait_until(lambda: harness.applied(name, 3), what="3 handled")

    assert await harness.effects(name) == dict.fromkeys(ids, 1)
    # Each event met four refusals before its effect committed; a batch retried in place
    # runs the handlers of its earlier events again (rolled back each time).
    assert set(attempts) == {str(i) for i in ids}
    assert min(attempts.values()) >= 5
    channel = await harness.brokers[0].channel()
    assert await _count(channel, consumer.queue.name + ".dlq", 0)


def test_only_an_unreachable_database_is_retried_in_place() -> None:
    assert database_unavailable(DBAPIError("x", {}, _TooManyConnections()))
    assert database_unavailable(DBAPIError("x", {}, ConnectionRefusedError()))
    assert not database_unavailable(DBAPIError("x", {}, ValueError("bad row")))
    assert not database_unavailable(ValueError("cannot handle this one"))


async def test_an_unroutable_event_stays_unsent_with_its_error_until_a_queue_takes_it(
    harness: Harness,
) -> None:
    # No queue is bound for the type yet: the broker returns the events, nothing is lost.
    ids = await harness.emit(2)
    relay = OutboxRelay(
        settings=harness.settings,
        engine=harness.engine,
        broker=await harness.broker(),
        outbox=harness.outbox,
    )
    try:
        with pytest.raises(PublishFailedError):
            await relay.relay_batch()
        async with harness.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(OutboxEvent.attempts, OutboxEvent.last_error, OutboxEvent.sent_at)
                )
            ).all()
        assert [(attempts, sent_at) for attempts, _, sent_at in rows] == [(1, None), (1, None)]
        assert all(error for _, error, _ in rows)

        await harness.consumer("routable-later")
        assert await relay.relay_batch() == 2
    finally:
        await relay.stop(drain_seconds=2)
    await wait_until(lambda: harness.applied("routable-later", 2), what="2 handled")
    assert await harness.effects("routable-later") == dict.fromkeys(ids, 1)
    assert await harness.unsent() == 0


async def test_a_prepared_handler_waits_outside_the_transaction_and_applies_once(
    harness: Harness,
) -> None:
    name = "prepared"
    record = harness.recording_handler(name)
    held_during_prepare: list[int] = []
    prepared: Counter[str] = Counter()
    applied: dict[str, int] = {}
    # The consumer's own pool: the relay's housekeeping borrows from the harness's at any time.
    engine = create_engine(harness.settings)

    async def prepare(event: Envelope) -> int:
        prepared[str(event.id)] += 1
        if prepared.total() == 1:
            # The slow call of a real handler (a provider), the first to arrive: the batch
            # that takes it waits for it, so no transaction is open while it runs, and none
            # is held for it.
            await asyncio.sleep(0.2)
            held_during_prepare.append(engine.pool.checkedout())  # type: ignore[attr-defined]
        if prepared[str(event.id)] == 1 and event.payload(StockLow).available == 0:
            raise ConnectionError("the provider did not answer")  # returned, then redelivered
        return event.payload(StockLow).available * 10

    all_applied = asyncio.Event()

    async def apply(session: AsyncSession, event: Envelope, outcome: int) -> None:
        applied[str(event.id)] = outcome
        await record(session, event)
        if len(applied) == 3:
            all_applied.set()

    consumer = await harness.consumer(
        name,
        PreparedHandler(prepare=prepare, apply=apply),
        sessionmaker=create_sessionmaker(engine),
    )
    try:
        ids = await harness.emit(3)
        await harness.relay()
        await asyncio.wait_for(all_applied.wait(), 30)
        await wait_until(lambda: harness.applied(name, 3), what="3 committed")
    finally:
        await consumer.stop(drain_seconds=2)
        await engine.dispose()

    assert await harness.effects(name) == dict.fromkeys(ids, 1)
    assert held_during_prepare == [0]
    assert sorted(applied.values()) == [0, 10, 20]  # what prepare returned reached apply
    assert sorted(prepared.values()) == [1, 1, 2]  # the failed preparation ran again
    assert metric("messaging_events_failed_total", queue=name) == 1


async def test_a_preparation_starts_on_arrival_and_a_batch_never_waits_on_a_later_one(
    harness: Harness,
) -> None:
    name = "prepared-pipeline"
    record = harness.recording_handler(name)
    # Per sku, the preparations that had ended when its own started.
    started: dict[str, set[str]] = {}
    ended: set[str] = set()
    applied: list[str] = []
    release = asyncio.Event()

    async def prepare(event: Envelope) -> None:
        sku = event.payload(StockLow).sku
        started[sku] = set(ended)
        if sku == "SLOW":
            await asyncio.sleep(1.0)  # a slow call: the oldest delivery, its batch waits
        elif sku == "HELD":
            await release.wait()  # a call that answers only when the test says
        ended.add(sku)

    async def apply(session: AsyncSession, event: Envelope, _: None) -> None:
        applied.append(event.payload(StockLow).sku)
        await record(session, event)

    await harness.consumer(name, PreparedHandler(prepare=prepare, apply=apply))
    for sku in ("SLOW", "FAST", "HELD"):
        await harness.emit(1, sku=sku)
        await harness.relay()

        async def preparing(sku: str = sku) -> bool:
            return sku in started

        await wait_until(preparing, what=f"{sku} preparing")
    # FAST and HELD arrived while the oldest delivery's call ran: theirs started at once.
    assert started["HELD"] == {"FAST"}
    # SLOW and the prepared FAST behind it are applied; HELD, not ready, is not waited for.
    await wait_until(lambda: harness.applied(name, 2), what="SLOW and FAST applied")
    assert applied == ["SLOW", "FAST"]
    release.set()
    await wait_until(lambda: harness.applied(name, 3), what="all applied")
    assert applied == ["SLOW", "FAST", "HELD"]


async def test_a_duplicate_is_prepared_again_but_never_applied_twice(harness: Harness) -> None:
    name = "prepared-duplicate"
    record = harness.recording_handler(name)
    prepared: Counter[str] = Counter()
    applied: Counter[str] = Counter()

    async def prepare(event: Envelope) -> None:
        prepared[str(event.id)] += 1

    async def apply(session: AsyncSession, event: Envelope, _: None) -> None:
        applied[str(event.id)] += 1
        await record(session, event)

    await harness.consumer(name, PreparedHandler(prepare=prepare, apply=apply))
    [event_id] = await harness.emit(1)
    await harness.relay()
    await wait_until(lambda: harness.applied(name, 1), what="handled")
    # The same event again, as a relay that died before marking it sent would publish it.
    async with harness.engine.begin() as connection:
        await connection.execute(update(OutboxEvent).values(sent_at=None))
    await wait_until(
        lambda: _metric_reaches("messaging_events_duplicate_total", name, 1), what="duplicate"
    )
    assert prepared == Counter({str(event_id): 2})
    assert applied == Counter({str(event_id): 1})
    assert await harness.effects(name) == {event_id: 1}
