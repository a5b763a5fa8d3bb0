"""A handler's spans and log lines in a consumer's batch: a handler of one event runs in that
event's consumer span, a failure marks the failed event's span alone, and the line that gives
it back carries that span's ids. Spans in memory; the broker and database are the real ones.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy.ext.asyncio import AsyncSession

from shared.messaging import BatchHandler, Envelope
from shared.tracing import current_trace_ids, setup

from .conftest import Harness, wait_until
from .test_batching import GATE_SKU, GatedScenario
from .test_tracing import spans, spans_named

__all__ = ["spans"]  # the fixture, shared with test_tracing

PROCESS = "process inventory.stock_low"


class RecordingIds(GatedScenario):
    """Records, per event, the trace and span ids its handler's log lines would carry."""

    def __init__(self, harness: Harness, name: str) -> None:
        super().__init__(harness, name)
        self.ids: dict[uuid.UUID, tuple[str, str] | None] = {}

    async def handle(self, session: AsyncSession, event: Envelope) -> None:
        self.ids[event.id] = current_trace_ids()
        await super().handle(session, event)


async def _requests_behind_gate(
    scenario: GatedScenario, skus: Sequence[str]
) -> dict[uuid.UUID, int]:
    """Each sku's event emitted by a request of its own (its trace), queued behind the gate
    so that they form one batch, then the gate released: per event, its request's trace."""
    tracer = setup.tracer()
    assert tracer is not None
    traces: dict[uuid.UUID, int] = {}

    async def requests() -> None:
        for sku in skus:
            with tracer.start_as_current_span("request") as request:
                [event_id] = await scenario.harness.emit(1, sku=sku)
            traces[event_id] = request.get_span_context().trace_id

    await scenario.start_gated()
    await scenario.queue_up(requests)
    scenario.release()
    return traces


def _in_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.name == PROCESS and span.context is not None and span.context.trace_id == trace_id
    ]


def _ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


async def test_in_a_batch_each_events_handler_runs_in_that_events_consumer_span(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    name = "traced-handlers"
    scenario = RecordingIds(harness, name)
    traces = await _requests_behind_gate(scenario, ["SKU-A", "SKU-B", "SKU-C"])
    await wait_until(lambda: harness.applied(name, 4), what="the gate and three events")

    batches = await spans_named(spans, f"process {name} batch", 1)
    assert any(len(batch.links) == 3 for batch in batches)  # the three were one batch
    for event_id, trace_id in traces.items():
        [own] = _in_trace(spans, trace_id)
        # What the handler's log lines carry: its own order's trace and consumer span.
        assert scenario.ids[event_id] == _ids(own)
        assert own.status.status_code is StatusCode.UNSET


async def test_a_batch_handler_of_several_events_logs_in_the_batch_span(
    harness: Harness, spans: InMemorySpanExporter
) -> None:
    name = "traced-batch-handler"
    seen: list[tuple[int, tuple[str, str] | None]] = []

    class Batched(GatedScenario):
        async def handle_many(self, session: AsyncSession, events: Sequence[Envelope]) -> None:
            seen.append((len(events), current_trace_ids()))
            for event in events:
                await self.handle(session, event)

        async def start_gated(self) -> None:
            self.consumer = await self.harness.consumer(self.name, BatchHandler(self.handle_many))
            await self.harness.emit(1, sku=GATE_SKU)
            await self.harness.relay()
            await asyncio.wait_for(self._entered.wait(), 30)

    scenario = Batched(harness, name)
    await _requests_behind_gate(scenario, ["SKU-A", "SKU-B", "SKU-C"])
    await wait_until(lambda: harness.applied(name, 4), what="the gate and three events")

    [batch] = await spans_named(spans, f"process {name} batch", 1)
    assert (3, _ids(batch)) in seen  # one call for the three: the batch span, linking each


async def test_a_failed_handler_marks_its_events_span_alone_and_its_give_back_carries_it(
    harness: Harness, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    name = "traced-failure"
    scenario = GatedScenario(harness, name)
    scenario.fail_first_attempt.add("SKU-FLAKY")
    with caplog.at_level(logging.ERROR, logger="shared.messaging.settlement"):
        traces = await _requests_behind_gate(scenario, ["SKU-A", "SKU-FLAKY", "SKU-C"])
        await wait_until(lambda: harness.applied(name, 4), what="the gate and three events")

    flaky = list(traces)[1]  # SKU-FLAKY's
    for event_id, trace_id in traces.items():
        statuses = [span.status.status_code for span in _in_trace(spans, trace_id)]
        if event_id == flaky:
            # The batch attempt it failed in, then its redelivery, handled.
            assert sorted(statuses, key=str) == [StatusCode.ERROR, StatusCode.UNSET], statuses
        else:
            # Rolled back with the failed batch and handled in the next: no error of theirs.
            assert StatusCode.ERROR not in statuses, statuses
    [failed] = [
        s for s in _in_trace(spans, traces[flaky]) if s.status.status_code is StatusCode.ERROR
    ]
    [line] = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert (getattr(line, "trace_id", None), getattr(line, "span_id", None)) == _ids(failed)


async def test_the_give_back_of_an_event_handled_alone_carries_its_spans_ids(
    harness: Harness, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    name = "traced-alone"
    record = harness.recording_handler(name)
    attempts: list[uuid.UUID] = []

    async def fails_once(session: AsyncSession, event: Envelope) -> None:
        attempts.append(event.id)
        if len(attempts) == 1:
            raise ValueError("refused once")
        await record(session, event)

    await harness.consumer(name, fails_once)
    tracer = setup.tracer()
    assert tracer is not None
    with caplog.at_level(logging.ERROR, logger="shared.messaging.settlement"):
        with tracer.start_as_current_span("request") as request:
            await harness.emit(1, sku="SKU-FLAKY")
        await harness.relay()
        await wait_until(lambda: harness.applied(name, 1), what="the event, second time")

    trace_id = request.get_span_context().trace_id
    [failed] = [s for s in _in_trace(spans, trace_id) if s.status.status_code is StatusCode.ERROR]
    [line] = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert (getattr(line, "trace_id", None), getattr(line, "span_id", None)) == _ids(failed)
