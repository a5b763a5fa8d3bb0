"""The gateway's spans, when tracing is on (``shared.tracing``; docs/tracing.md).

- A server span per request (``shared.tracing.http.ServerSpans``, as the services'), named by
  its route (a proxied prefix, or the gateway's own path), never by a raw path, so that
  names stay few; the gateway's alone also records the client's user agent.
- The gateway starts every trace: a client's ``traceparent``, ``tracestate`` and
  ``baggage`` are dropped before the server span reads them, so a client can neither force
  sampling nor graft its requests onto a trace of its choosing. So the sampler decides each
  request's fate at the gateway, before anything else is built.
- A client span per forwarded request (``TracedHttp1Pool``), its W3C context injected into
  the upstream request's headers; the span ends when the upstream's answer's head arrives.
  A request whose trace is not sampled gets no client span: its server span's context,
  sampled flag off, is what travels upstream (``shared.tracing.unsampled``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import get_current
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.proxy.http1 import Http1Pool, Origin, UpstreamResponse
from gateway.proxy.routes import RouteTable
from shared.tracing import sampled, tracer
from shared.tracing.http import ServerSpans, SpanDetails, excluded_requests
from shared.tracing.propagation import carrier_of

TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_UNTRACED: contextlib.nullcontext[None] = contextlib.nullcontext()


def traced(app: ASGIApp, *, routes: RouteTable, own_paths: Collection[str]) -> ASGIApp:
    """``app`` with the gateway's server spans, or ``app`` itself when tracing is off."""
    platform_tracer = tracer()
    if platform_tracer is None:
        return app
    details = span_details(routes, own_paths)
    spans = ServerSpans(
        app, details, platform_tracer, excluded=excluded_requests("ASGI"), with_user_agent=True
    )
    return ClientTraceContextDropped(spans)


def span_details(routes: RouteTable, own_paths: Collection[str]) -> SpanDetails:
    """Names a request's server span from its scope: method and route, or method alone."""
    known = frozenset(own_paths)

    def details(scope: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        method: str = scope.get("method") or "HTTP"
        path: str = scope.get("path", "")
        route = routes.match(path)
        template = route.path if route is not None else path if path in known else None
        if template is None:
            return method, {}
        return f"{method} {template}", {"http.route": template}

    return details


class ClientTraceContextDropped:
    """Pure ASGI: removes the client's trace headers (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(name in TRACE_HEADERS for name, _ in scope["headers"]):
            scope = dict(scope)
            scope["headers"] = [(n, v) for n, v in scope["headers"] if n not in TRACE_HEADERS]
        await self.app(scope, receive, send)


class TracedHttp1Pool(Http1Pool):
    """The upstream pool, each request in a client span whose context it carries."""

    async def request(
        self,
        origin: Origin,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> UpstreamResponse:
        with self._span(origin, method, target) as span:
            response = await super().request(origin, method, target, _with_context(headers), body)
            _answered(span, response)
            return response

    async def request_streamed(
        self,
        origin: Origin,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes],
        length: int | None,
    ) -> UpstreamResponse:
        with self._span(origin, method, target) as span:
            response = await super().request_streamed(
                origin, method, target, _with_context(headers), body, length
            )
            _answered(span, response)
            return response

    @staticmethod
    def _span(origin: Origin, method: str, target: bytes) -> Any:
        if sampled() is False:
            return _UNTRACED
        platform_tracer = tracer()
        assert platform_tracer is not None  # the pool is built only when tracing is on
        path = target.split(b"?", 1)[0].decode("latin-1")
        return platform_tracer.start_as_current_span(
            method,
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": origin.host,
                "server.port": origin.port,
                "url.path": path,
            },
        )


def _with_context(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus the current span's W3C context (any the client sent is gone)."""
    carrier = carrier_of(get_current())
    added = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in carrier.items()]
    return [*headers, *added]


def _answered(span: trace.Span | None, response: UpstreamResponse) -> None:
    if span is None:
        return
    span.set_attribute("http.response.status_code", response.status)
    if response.status >= 500:
        span.set_status(Status(StatusCode.ERROR))
