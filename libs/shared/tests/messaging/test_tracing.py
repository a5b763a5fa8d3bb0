"""Trace context through the outbox, the relay, RabbitMQ and the consumer, in one process.

Spans go to the SDK's in-memory exporter; the broker and database are the real ones.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator, Sequence

import aio_pika
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.inventory import StockLow
from shared.messaging import BatchHandler, Envelope
from shared.messaging.dlq import count_messages, replay
from shared.messaging.topology import events_exchange_name
from shared.testing.tracing import in_memory_tracing
from shared.tracing import setup, untraced

from .conftest import Effect, Harness, OutboxEvent, wait_until
from .test_batching import GatedScenario

FOLLOW_UP_SKU = "SKU-FOLLOW-UP"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with in_memory_tracing("messaging-test") as exporter:
        yield exporter


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


async def spans_named(exporter: InMemorySpanExporter, name: str, count: int) -> list[ReadableSpan]:
    async with asyncio.timeout(30):
        while True:
            found = named(exporter, name)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_an_event_and_the_event_it_causes_continue_the_trace_that_wrote_the_first(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    name = "traced"
    record = harness.recording_handler(name)

    async def handle(session: AsyncSession, event: Envelope) -> None:
        await record(session, event)
        if event.payload(StockLow).sku != FOLLOW_UP_SKU:
            follow_up = event.caused(StockLow(sku=FOLLOW_UP_SKU, available=0, reorder_point=1))
            await harness.outbox.add(session, follow_up)

    await harness.consumer(name, handle)
    tracer = setup.tracer()
    assert tracer is not None
    with tracer.start_as_current_span("request", kind=SpanKind.SERVER) as request:
        await harness.emit(1)
    await harness.relay()
    await wait_until(lambda: harness.applied(name, 2), what="the event and its follow-up")

    published = await spans_named(spans, "publish inventory.stock_low", 2)
    processed = await spans_named(spans, "process inventory.stock_low", 2)
    first_publish, second_publish = sorted(published, key=lambda s: s.start_time or 0)
    first_process, second_process = sorted(processed, key=lambda s: s.start_time or 0)
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in [*published, *processed] if s.context} == {trace_id}
    assert first_publish.kind is SpanKind.PRODUCER
    assert first_process.kind is SpanKind.CONSUMER
    # request → publish → process → (the follow-up's row) publish → process
    assert parent_of(first_publish) == request.get_span_context().span_id
    assert first_process.context is not None
    assert first_publish.context is not None
    assert parent_of(first_process) == first_publish.context.span_id
    assert parent_of(second_publish) == first_process.context.span_id
    assert second_publish.context is not None
    assert parent_of(second_process) == second_publish.context.span_id
    # The consumer's statements are its children (asyncpg instrumented).
    statements = [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.CLIENT and parent_of(s) == first_process.context.span_id
    ]
    assert statements


async def test_an_event_no_sampled_trace_follows_is_relayed_and_handled_untraced_context_kept(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    name = "unsampled"
    record = harness.recording_handler(name)
    instrumented: list[bool] = []

    async def handle(session: AsyncSession, event: Envelope) -> None:
        instrumented.append(is_instrumentation_enabled())
        await record(session, event)
        if event.payload(StockLow).sku != FOLLOW_UP_SKU:
            follow_up = event.caused(StockLow(sku=FOLLOW_UP_SKU, available=0, reorder_point=1))
            await harness.outbox.add(session, follow_up)

    await harness.consumer(name, handle)
    trace_id = uuid.uuid4().hex
    request = NonRecordingSpan(
        SpanContext(int(trace_id, 16), 0x42, is_remote=True, trace_flags=TraceFlags(0))
    )
    with untraced(trace.set_span_in_context(request)):  # as an unsampled request runs
        await harness.emit(1)
    await harness.relay()
    await wait_until(lambda: harness.applied(name, 2), what="the event and its follow-up")

    # Handled with the instrumentations quiet; no span at all: no publish, process, statement.
    assert instrumented == [False, False]
    assert spans.get_finished_spans() == ()
    # Both rows, the request's and its follow-up's, carry the trace on with its flag off.
    async with harness.sessionmaker() as session:
        stored = (await session.scalars(select(OutboxEvent.trace_context))).all()
    ours = [c["traceparent"] for c in stored if c is not None and trace_id in c["traceparent"]]
    assert len(ours) == 2, stored
    for traceparent in ours:
        assert re.fullmatch(f"00-{trace_id}-[0-9a-f]{{16}}-00", traceparent), traceparent


async def test_the_trace_context_travels_in_the_message_headers_not_in_its_body(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    consumer = await harness.consumer("headers", start=False)
    tracer = setup.tracer()
    assert tracer is not None
    with tracer.start_as_current_span("request"):
        [event_id] = await harness.emit(1)
    async with harness.sessionmaker() as session:
        stored = await session.scalar(
            select(OutboxEvent.trace_context).where(OutboxEvent.id == event_id)
        )
    assert stored is not None
    assert set(stored) == {"traceparent"}

    await harness.relay()
    message = await _next_message(consumer.queue)
    [publish] = await spans_named(spans, "publish inventory.stock_low", 1)
    assert publish.context is not None
    sent = f"00-{publish.context.trace_id:032x}-{publish.context.span_id:016x}-"
    assert str((message.headers or {}).get("traceparent")).startswith(sent)
    assert b"traceparent" not in message.body
    await message.ack()


async def test_a_dlq_replay_keeps_the_trace_context(harness: Harness) -> None:
    consumer = await harness.consumer("replayed", start=False)
    broker = await harness.broker()
    channel = await broker.channel()
    dlq = consumer.queue.name + ".dlq"
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    event = Envelope.new(StockLow(sku="SKU-DEAD", available=0, reorder_point=1))
    events = await channel.get_exchange(events_exchange_name(harness.settings), ensure=False)
    await events.publish(
        aio_pika.Message(
            event.to_bytes(),
            headers={"traceparent": traceparent},
            message_id=str(event.id),
            type=event.type,
        ),
        routing_key=event.type,
    )
    dead = await _next_message(consumer.queue)
    await dead.reject(requeue=False)  # the broker dead-letters it
    await wait_until(lambda: _dead_letters(channel, dlq), what="the event in the DLQ")
    assert await replay(broker, queue=dlq) == 1
    message = await _next_message(consumer.queue)
    assert (message.headers or {}).get("traceparent") == traceparent
    await message.ack()
    await channel.close()


async def _dead_letters(channel: aio_pika.abc.AbstractChannel, dlq: str) -> bool:
    return await count_messages(channel, dlq) == 1


async def test_a_batch_links_every_event_and_each_follow_up_stays_in_its_own_trace(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    name = "traced-batch"

    class FollowingUp(GatedScenario):
        async def handle_many(self, session: AsyncSession, events: Sequence[Envelope]) -> None:
            for event in events:
                await self.handle(session, event)
            follow_ups = [
                event.caused(StockLow(sku=FOLLOW_UP_SKU, available=0, reorder_point=1))
                for event in events
                if event.payload(StockLow).sku != FOLLOW_UP_SKU
            ]
            await self.harness.outbox.add_many(session, follow_ups)

        async def start_gated(self) -> None:
            self.consumer = await self.harness.consumer(self.name, BatchHandler(self.handle_many))
            await self.harness.emit(1, sku="SKU-GATE")
            await self.harness.relay()
            await asyncio.wait_for(self._entered.wait(), 30)

    scenario = FollowingUp(harness, name)
    tracer = setup.tracer()
    assert tracer is not None
    traces: dict[uuid.UUID, int] = {}
    await scenario.start_gated()

    async def three_requests() -> None:
        for _ in range(3):
            with tracer.start_as_current_span("request") as request:
                [event_id] = await harness.emit(1)
            traces[event_id] = request.get_span_context().trace_id

    await scenario.queue_up(three_requests)
    scenario.release()
    await wait_until(lambda: harness.applied(name, 8), what="4 events and their follow-ups")

    # The three requests' events were handled in one transaction: its span links all three.
    batches = await spans_named(spans, f"process {name} batch", 1)
    assert {batch.kind for batch in batches} == {SpanKind.CONSUMER}
    assert any(
        set(traces.values()) <= {link.context.trace_id for link in batch.links} for batch in batches
    )
    # Each follow-up's row carries the trace of the request that caused its cause.
    async with harness.sessionmaker() as session:
        rows = (await session.execute(select(OutboxEvent.body, OutboxEvent.trace_context))).all()
    causes = {
        uuid.UUID(body["causation_id"]): context["traceparent"]
        for body, context in rows
        if body["causation_id"] is not None
    }
    for event_id, trace_id in traces.items():
        assert causes[event_id].split("-")[1] == f"{trace_id:032x}"


async def test_with_tracing_off_nothing_is_stored_or_sent(harness: Harness) -> None:
    assert not setup.tracing_enabled()
    consumer = await harness.consumer("untraced", start=False)
    [event_id] = await harness.emit(1)
    async with harness.sessionmaker() as session:
        row = await session.get(OutboxEvent, event_id)
        assert row is not None
        assert row.trace_context is None
    await harness.relay()
    message = await _next_message(consumer.queue)
    assert "traceparent" not in (message.headers or {})
    await message.ack()
    async with harness.sessionmaker() as session:
        assert (await session.scalars(select(Effect))).all() == []


async def _next_message(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    async with asyncio.timeout(30):
        while True:
            message = await queue.get(no_ack=False, fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.05)
