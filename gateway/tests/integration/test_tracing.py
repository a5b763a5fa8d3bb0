"""The gateway's spans: a client span per forwarded request carrying its W3C context, the
client's own trace headers never trusted nor forwarded, server spans named by route."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config import GatewaySettings
from gateway.proxy.http1 import Http1Pool
from gateway.proxy.routes import RouteTable
from gateway.proxy.tracing import (
    ClientTraceContextDropped,
    TracedHttp1Pool,
    span_details,
    traced,
)
from gateway.proxy.upstream import UpstreamClient
from shared.testing.ports import free_port
from shared.testing.processes import serving
from shared.testing.tracing import in_memory_tracing
from shared.tracing import sampled, tracer, untraced
from tests.harness.otlp import OtlpReceiver

from .test_upstream_pool import ScriptedUpstream, ok

CLIENT_TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def _ok(connection: int, request: int, head: bytes) -> bytes:
    return ok()


def _traced_pool() -> TracedHttp1Pool:
    return TracedHttp1Pool(
        limit=2, keepalive_seconds=5, connect_timeout=2, read_timeout=2, total_timeout=5
    )


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with in_memory_tracing("gateway") as exporter:
        yield exporter


async def test_a_forwarded_request_is_a_client_span_whose_context_the_upstream_receives(
    spans: InMemorySpanExporter,
) -> None:
    pool = _traced_pool()
    platform_tracer = tracer()
    assert platform_tracer is not None
    async with ScriptedUpstream(_ok) as upstream:
        with platform_tracer.start_as_current_span("POST /api/v1/orders", kind=SpanKind.SERVER):
            response = await pool.request(
                upstream.origin, "POST", b"/api/v1/orders?x=1", [(b"accept", b"*/*")], b"{}"
            )
            assert await response.read() == b"ok"
            response.release()
        await pool.close()

    [client] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    [server] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert client.context is not None
    assert server.context is not None
    assert client.parent is not None
    assert client.parent.span_id == server.context.span_id
    assert client.attributes is not None
    assert client.attributes["http.response.status_code"] == 200
    assert client.attributes["url.path"] == "/api/v1/orders"
    [sent] = re.findall(rb"\r\ntraceparent: ([^\r]+)", upstream.requests[0])
    expected = f"00-{client.context.trace_id:032x}-{client.context.span_id:016x}-"
    assert sent.decode().startswith(expected)


async def test_a_request_whose_trace_is_not_sampled_gets_no_client_span_but_sends_its_context(
    spans: InMemorySpanExporter,
) -> None:
    pool = _traced_pool()
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    unsampled = NonRecordingSpan(SpanContext(trace_id, span_id, False, TraceFlags(0)))
    async with ScriptedUpstream(_ok) as upstream:
        with untraced(trace.set_span_in_context(unsampled)):  # as an unsampled request runs
            response = await pool.request(upstream.origin, "GET", b"/api/v1/orders", [], b"")
            assert await response.read() == b"ok"
            response.release()
        await pool.close()

    assert spans.get_finished_spans() == ()
    [sent] = re.findall(rb"\r\ntraceparent: ([^\r]+)", upstream.requests[0])
    assert sent.decode() == f"00-{trace_id:032x}-{span_id:016x}-00"


def test_a_clients_trace_headers_are_never_forwarded_upstream() -> None:
    client = UpstreamClient(GatewaySettings())
    scope: Scope = {
        "type": "http",
        "headers": [
            (b"traceparent", CLIENT_TRACEPARENT),
            (b"tracestate", b"vendor=1"),
            (b"baggage", b"user=someone"),
            (b"accept", b"*/*"),
        ],
        "client": ("127.0.0.1", 1234),
    }
    headers, _ = client._request_headers(scope)
    assert {name for name, _ in headers} == {b"accept", b"x-forwarded-for", b"x-forwarded-proto"}


async def test_the_server_span_does_not_see_a_clients_trace_context() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: object, send: object) -> None:
        seen.append(scope)

    scope: Scope = {
        "type": "http",
        "headers": [(b"traceparent", CLIENT_TRACEPARENT), (b"accept", b"*/*")],
    }

    async def receive() -> Message:
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        await asyncio.sleep(0)

    await ClientTraceContextDropped(app)(scope, receive, send)
    assert seen[0]["headers"] == [(b"accept", b"*/*")]
    assert scope["headers"][0][0] == b"traceparent"  # the caller's scope is left as it was


def test_server_spans_are_named_by_route_never_by_a_raw_path() -> None:
    details = span_details(
        RouteTable({"/api/v1/orders": "http://127.0.0.1:8002"}), ["/api/v1/auth/token"]
    )
    assert details({"method": "GET", "path": "/api/v1/orders/0190-abc"}) == (
        "GET /api/v1/orders/{path}",
        {"http.route": "/api/v1/orders/{path}"},
    )
    assert details({"method": "POST", "path": "/api/v1/auth/token"})[0] == "POST /api/v1/auth/token"
    assert details({"method": "GET", "path": "/wp-login.php"}) == ("GET", {})


async def test_with_tracing_off_the_stack_and_the_pool_are_the_untraced_ones() -> None:
    async def app(scope: Scope, receive: object, send: object) -> None:
        await asyncio.sleep(0)

    assert traced(app, routes=RouteTable({}), own_paths=[]) is app
    client = UpstreamClient(GatewaySettings())
    await client.start()
    try:
        assert type(client.pool) is Http1Pool
    finally:
        await client.close()


# -- the root server spans (ServerSpans): the sampler decides before anything is built --


ROUTES = RouteTable({"/api/v1/orders": "http://127.0.0.1:8002"})


@dataclass
class Seen:
    """What the app behind the spans saw of its context."""

    trace_id: int | None = None
    sampled: bool | None = None
    instrumented: bool | None = None


def _answering(seen: Seen, status: int) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        span_context = trace.get_current_span().get_span_context()
        seen.trace_id = span_context.trace_id if span_context.is_valid else None
        seen.sampled = sampled()
        seen.instrumented = is_instrumentation_enabled()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


async def _post(app: ASGIApp, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        return await client.post(
            path + "?token=secret",
            headers={"user-agent": "storefront/1", "traceparent": CLIENT_TRACEPARENT.decode()},
        )


def _gateway(app: ASGIApp, *own_paths: str) -> ASGIApp:
    """``app`` in the gateway's server spans, as ``GatewayApp`` builds them."""
    return traced(app, routes=ROUTES, own_paths=own_paths)


def _sampling(monkeypatch: pytest.MonkeyPatch, ratio: str) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", ratio)


async def test_a_root_the_sampler_drops_builds_no_span_and_runs_untraced_in_its_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _sampling(monkeypatch, "0")
    seen = Seen()
    with in_memory_tracing("gateway") as exporter:
        app = _gateway(_answering(seen, 200))
        assert (await _post(app, "/api/v1/orders")).status_code == 200
    assert exporter.get_finished_spans() == ()
    # A new trace of the gateway's own (never the client's), flag off, what goes upstream.
    assert seen.trace_id not in (None, int(CLIENT_TRACEPARENT.split(b"-")[1], 16))
    assert (seen.sampled, seen.instrumented) == (False, False)


async def test_a_sampled_root_is_a_server_span_by_route_with_the_requests_attributes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _sampling(monkeypatch, "1")
    seen = Seen()
    with in_memory_tracing("gateway") as exporter:
        app = _gateway(_answering(seen, 201))
        assert (await _post(app, "/api/v1/orders/0190-abc/cancel")).status_code == 201
    [span] = exporter.get_finished_spans()
    assert span.context is not None
    assert (span.name, span.kind, span.parent) == (
        "POST /api/v1/orders/{path}",
        SpanKind.SERVER,
        None,
    )
    assert (seen.trace_id, seen.sampled, seen.instrumented) == (span.context.trace_id, True, True)
    assert dict(span.attributes or {}) == {
        "http.route": "/api/v1/orders/{path}",
        "http.request.method": "POST",
        "url.scheme": "http",
        "url.path": "/api/v1/orders/0190-abc/cancel",
        "network.protocol.version": "1.1",
        "server.address": "shop.test",  # no port: the test transport gives none
        "client.address": "203.0.113.7",
        "user_agent.original": "storefront/1",
        "http.response.status_code": 201,
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_a_sampled_root_that_answers_5xx_or_raises_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _sampling(monkeypatch, "1")

    async def raising(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("upstream pool broken")

    with in_memory_tracing("gateway") as exporter:
        answering = _gateway(_answering(Seen(), 503))
        assert (await _post(answering, "/api/v1/orders")).status_code == 503
        with pytest.raises(RuntimeError):
            await _post(_gateway(raising), "/api/v1/orders")
    failed, raised = exporter.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert raised.status.status_code is StatusCode.ERROR
    assert [event.name for event in raised.events] == ["exception"]


async def test_probes_and_scrapes_get_no_span_and_run_untraced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _sampling(monkeypatch, "1")
    seen = Seen()
    with in_memory_tracing("gateway") as exporter:
        app = _gateway(_answering(seen, 200), "/health/ready")
        for path in ("/health/ready", "/metrics"):
            assert (await _post(app, path)).status_code == 200
    assert exporter.get_finished_spans() == ()
    assert seen.instrumented is False


# -- a real gateway process, stopped by SIGTERM ---------------------------------------------


@pytest.mark.slow
def test_a_gateway_stopped_by_sigterm_exports_its_spans_first(
    database: str, tmp_path: Path
) -> None:
    """uvicorn re-raises the SIGTERM it shut down on, before the SDK's exit hook could export
    what its batch processor holds (here, all of it: the export delay outlasts the test)."""
    port, internal_port = free_port(), free_port()
    log = tmp_path / "gateway.log"
    with OtlpReceiver() as receiver:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        environment = {
            **inherited,
            "GATEWAY_PORT": str(port),
            "GATEWAY_INTERNAL_PORT": str(internal_port),
            "GATEWAY_JWT_DEV_KEY_DIR": str(tmp_path / "keys"),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "600000",
        }
        with serving(
            [sys.executable, "-m", "gateway"],
            env=environment,
            log=log,
            ready_url=f"http://127.0.0.1:{internal_port}/health/live",
        ):
            answer = httpx.get(f"http://127.0.0.1:{port}/no-such-path?token=secret", timeout=5)
            assert answer.status_code == 404
        spans = receiver.spans()
    assert [(span.service, span.kind, span.name) for span in spans] == [
        ("gateway", "SERVER", "GET")
    ], log.read_text()
    assert spans[0].attributes["url.path"] == "/no-such-path"


async def test_the_gateways_own_routes_name_their_spans(
    spans: InMemorySpanExporter, gateway_client: Any
) -> None:
    # Its own routes live in included routers, which FastAPI keeps as one entry each with
    # no path of its own: the paths have to be read through them.
    async with gateway_client() as client:
        await client.get("/api/v1/auth/me", headers={"traceparent": CLIENT_TRACEPARENT.decode()})
        await client.get("/.well-known/jwks.json")
    names = {span.name for span in spans.get_finished_spans() if span.kind is SpanKind.SERVER}
    assert {"GET /api/v1/auth/me", "GET /.well-known/jwks.json"} <= names
