"""Requests no sampled trace follows run untraced, their context still current.

An app in ``traced_app``'s server spans, driven in process, tracing on with the SDK's
in-memory exporter: a request whose ``traceparent`` says sampled gets its server span (named
by route template) and instrumented clients; one whose flag is off, or a root this process
decides not to sample, gets neither, but its trace context is what the work inside sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.testing.tracing import in_memory_tracing
from shared.tracing import sampled, tracer, untraced
from shared.tracing.http import traced_app

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


@dataclass
class Seen:
    """What the handler saw of its context."""

    trace_id: str | None = None
    sampled: bool | None = None
    instrumented: bool | None = None


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)  # parent-based, always on
    with in_memory_tracing("unsampled-test") as exporter:
        yield exporter


def _app(seen: Seen) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        span_context = trace.get_current_span().get_span_context()
        seen.trace_id = format(span_context.trace_id, "032x") if span_context.is_valid else None
        seen.sampled = sampled()
        seen.instrumented = is_instrumentation_enabled()
        return {"id": item_id}

    return app


async def _get(app: FastAPI, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=traced_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return await client.get("/items/abc", headers=headers)


async def test_a_request_whose_trace_is_not_sampled_gets_no_span_but_keeps_its_context(
    spans: InMemorySpanExporter,
) -> None:
    seen = Seen()
    answer = await _get(_app(seen), {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    assert answer.status_code == 200
    assert seen == Seen(trace_id=TRACE_ID, sampled=False, instrumented=False)
    assert spans.get_finished_spans() == ()


async def test_a_sampled_request_gets_its_server_span_by_route_and_instrumented_clients(
    spans: InMemorySpanExporter,
) -> None:
    seen = Seen()
    answer = await _get(_app(seen), {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert answer.status_code == 200
    assert seen == Seen(trace_id=TRACE_ID, sampled=True, instrumented=True)
    [server] = spans.get_finished_spans()
    assert server.name == "GET /items/{item_id}"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/items/{item_id}"
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_ID


async def test_a_root_this_process_does_not_sample_runs_untraced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off")
    seen = Seen()
    with in_memory_tracing("unsampled-test") as exporter:
        answer = await _get(_app(seen), {})
    assert answer.status_code == 200
    assert seen.sampled is False
    assert seen.instrumented is False
    assert seen.trace_id is not None  # a context to pass on, its flag off
    assert exporter.get_finished_spans() == ()


def test_untraced_work_has_the_given_context_and_quiet_instrumentations() -> None:
    with in_memory_tracing("unsampled-test"):
        platform_tracer = tracer()
        assert platform_tracer is not None
        with platform_tracer.start_as_current_span("request") as request:
            context = trace.set_span_in_context(request)
        assert is_instrumentation_enabled()
        with untraced(context):
            assert not is_instrumentation_enabled()
            assert trace.get_current_span() is request
        assert is_instrumentation_enabled()
        assert not trace.get_current_span().get_span_context().is_valid
