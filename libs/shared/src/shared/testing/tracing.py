"""Tracing on for a test, every span kept in memory (the SDK's in-memory exporter); stored
trace contexts read, and a request's context (sampled or not) made current."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.tracing import setup, untraced
from shared.tracing.propagation import extract


@contextmanager
def in_memory_tracing(process_name: str = "test") -> Iterator[InMemorySpanExporter]:
    """Trace as a configured process would (sampler of the environment, instrumentations),
    each span exported as it ends; everything undone at the end."""
    exporter = InMemorySpanExporter()
    provider = setup.build_provider(process_name, [SimpleSpanProcessor(exporter)])
    setup.install(provider)
    try:
        yield exporter
    finally:
        setup.uninstall()
        provider.shutdown()


@dataclass(frozen=True)
class StoredTrace:
    """A stored trace context (an outbox row's or another row's ``trace_context``), read."""

    trace_id: int
    span_id: int
    sampled: bool


def stored_trace(stored: Mapping[str, Any] | str | None) -> StoredTrace | None:
    """The trace a stored context names (a JSON object of W3C headers), or None."""
    if stored is None:
        return None
    carrier = orjson.loads(stored) if isinstance(stored, str) else stored
    context = trace.get_current_span(extract(carrier)).get_span_context()
    if not context.is_valid:
        return None
    return StoredTrace(context.trace_id, context.span_id, context.trace_flags.sampled)


@contextmanager
def in_trace(*, sampled: bool) -> Iterator[StoredTrace]:
    """Within: a request's span current (a real one when ``sampled``, else a context whose
    sampled flag is off, as an unsampled request runs: ``shared.tracing.unsampled``)."""
    platform_tracer = setup.tracer()
    assert platform_tracer is not None, "tracing is off"
    if sampled:
        with platform_tracer.start_as_current_span("request") as span:
            ids = span.get_span_context()
            yield StoredTrace(ids.trace_id, ids.span_id, sampled=True)
        return
    ids = SpanContext(
        trace_id=random.getrandbits(128),
        span_id=random.getrandbits(64),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    with untraced(trace.set_span_in_context(NonRecordingSpan(ids))):
        yield StoredTrace(ids.trace_id, ids.span_id, sampled=False)


def assert_job_continued(
    stored: Mapping[str, Any] | str | None,
    request: StoredTrace,
    exporter: InMemorySpanExporter,
    *,
    job_span: str,
) -> None:
    """That an outbox row a periodic job wrote (``stored``, its ``trace_context``) continues
    ``request``'s trace: under the job's one span ``job_span``, child of the request's, when
    it was sampled; with the request's own context, unsampled and spanless, when not."""
    outcome = stored_trace(stored)
    assert outcome is not None
    assert (outcome.trace_id, outcome.sampled) == (request.trace_id, request.sampled)
    spans = exporter.get_finished_spans()
    if not request.sampled:
        assert spans == ()
        assert outcome.span_id == request.span_id
        return
    (span,) = spans
    assert span.name == job_span
    assert span.parent is not None
    assert span.parent.span_id == request.span_id
    assert span.context is not None
    assert outcome.span_id == span.context.span_id
