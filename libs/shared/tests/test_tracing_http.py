"""A service's server spans say which route was asked, never what the query or a header held.

The services' and the gateway's server spans are one middleware (``shared.tracing.http``):
the same stable attribute names, no query string, no header value; probes and scrapes, and
the paths the standard exclusion variables name, get none.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.testing.tracing import in_memory_tracing
from shared.tracing.http import excluded_requests, traced_app

SAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SECRETS = ("shopper%40example.com", "shopper@example.com", "c2VjcmV0LWN1cnNvcg", "secret-agent")


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    for name in (
        "OTEL_TRACES_SAMPLER",  # parent-based, always on
        "OTEL_PYTHON_EXCLUDED_URLS",
        "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS",
    ):
        monkeypatch.delenv(name, raising=False)
    with in_memory_tracing("orders") as exporter:
        yield exporter


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/orders")
    async def orders(email: str = "", cursor: str = "") -> dict[str, str]:
        return {"email": email}

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/internal/stats")
    async def stats() -> dict[str, str]:
        return {}

    return app


async def _get(app: FastAPI, target: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=traced_app(app), client=("10.0.0.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://orders:8002") as client:
        return await client.get(target, headers=headers)


def _values(attributes: Any) -> list[str]:
    return [str(value) for value in dict(attributes or {}).values()]


async def test_a_service_span_carries_neither_the_query_nor_a_header_value(
    spans: InMemorySpanExporter,
) -> None:
    answer = await _get(
        _app(),
        "/orders?email=shopper%40example.com&cursor=c2VjcmV0LWN1cnNvcg",
        traceparent=SAMPLED,
        authorization="Bearer not-a-real-token",
        **{"user-agent": "secret-agent/7", "x-forwarded-for": "203.0.113.9"},
    )
    assert answer.status_code == 200
    [span] = spans.get_finished_spans()
    assert span.name == "GET /orders"
    # The gateway's names (stable semantic conventions), without its user agent.
    assert dict(span.attributes or {}) == {
        "http.route": "/orders",
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/orders",
        "network.protocol.version": "1.1",
        "server.address": "orders",
        "server.port": 8002,
        "client.address": "10.0.0.7",
        "http.response.status_code": 200,
    }
    texts = _values(span.attributes) + [
        value for event in span.events for value in _values(event.attributes)
    ]
    for secret in (*SECRETS, "not-a-real-token", "203.0.113.9"):
        assert not any(secret in text for text in texts), secret


async def test_probes_are_never_traced_and_the_exclusion_variables_add_to_them(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "/internal/")
    for target in ("/health/ready", "/internal/stats"):
        assert (await _get(_app(), target, traceparent=SAMPLED)).status_code == 200
    assert spans.get_finished_spans() == ()
    assert (await _get(_app(), "/orders", traceparent=SAMPLED)).status_code == 200
    assert [span.name for span in spans.get_finished_spans()] == ["GET /orders"]


def test_the_frameworks_exclusion_variable_wins_over_the_generic_one_probes_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_EXCLUDED_URLS", "/internal/")
    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "/static/")
    services, gateway = excluded_requests("FASTAPI"), excluded_requests("ASGI")
    for probe in ("/health/live", "/health/ready", "/metrics"):
        assert services.url_disabled(probe)
        assert gateway.url_disabled(probe)
    assert services.url_disabled("/static/app.js")
    assert not services.url_disabled("/internal/stats")
    assert gateway.url_disabled("/internal/stats")  # no ASGI variable: the generic one
    assert not gateway.url_disabled("/api/v1/orders")


async def test_a_span_is_named_by_the_template_of_a_route_of_an_included_router(
    spans: InMemorySpanExporter,
) -> None:
    # Every service's routes live in included routers, which FastAPI keeps as one entry
    # each, with no path of its own: named by those entries, every span was "GET".
    router = APIRouter(prefix="/api/v1/orders")

    @router.get("/{order_id}")
    async def order(order_id: str) -> dict[str, str]:
        return {"id": order_id}

    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=traced_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://orders:8002") as client:
        for method in ("GET", "HEAD", "PUT"):
            await client.request(method, "/api/v1/orders/42", headers={"traceparent": SAMPLED})
    names = [span.name for span in spans.get_finished_spans()]
    assert names == [
        "GET /api/v1/orders/{order_id}",
        "HEAD /api/v1/orders/{order_id}",
        "PUT /api/v1/orders/{order_id}",  # a 405, still named by the path's template
    ]
    routes = {(span.attributes or {}).get("http.route") for span in spans.get_finished_spans()}
    assert routes == {"/api/v1/orders/{order_id}"}
