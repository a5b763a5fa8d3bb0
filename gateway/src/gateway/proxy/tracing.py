"""The gateway's spans, when tracing is on (``shared.tracing``; docs/tracing.md).

- A server span per request, named by its route (a proxied prefix, or the gateway's own
  path), never by a raw path, so that names stay few. The gateway roots every trace, so its
  sampler decides each request's fate before anything else is built (``RootServerSpans``):
  the ASGI instrumentation would gather a request's attributes and wrap its messages first,
  which for the requests nobody records costs as much as the proxying itself.
- The gateway starts every trace: a client's ``traceparent``, ``tracestate`` and
  ``baggage`` are dropped before the server span reads them, so a client can neither force
  sampling nor graft its requests onto a trace of its choosing.
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
from opentelemetry.context import attach, detach, get_current
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import ExcludeList
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.proxy.http1 import Http1Pool, Origin, UpstreamResponse
from gateway.proxy.routes import RouteTable
from shared.tracing import sampled, tracer, untraced
from shared.tracing.messaging import carrier_of
from shared.tracing.setup import SpanDetails, excluded_requests

TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_UNTRACED: contextlib.nullcontext[None] = contextlib.nullcontext()


def traced(app: ASGIApp, *, routes: RouteTable, own_paths: Collection[str]) -> ASGIApp:
    """``app`` with the gateway's server spans, or ``app`` itself when tracing is off."""
    platform_tracer = tracer()
    if platform_tracer is None:
        return app
    details = span_details(routes, own_paths)
    spans = RootServerSpans(app, details, platform_tracer, excluded=excluded_requests())
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


class RootServerSpans:
    """Pure ASGI: each HTTP request in a server span that roots its trace (module doc).

    The span is started first, with its name and route only, so the sampler decides at once.
    A request it does not sample runs untraced with that span's context current: the
    context, sampled flag off, is what travels upstream, and nothing else is built. A sampled
    one gets the request's attributes (never its query, headers or body) and its status.
    Probes and scrapes (``excluded``) run untraced, with no span.
    """

    def __init__(
        self,
        app: ASGIApp,
        details: SpanDetails,
        platform_tracer: trace.Tracer,
        *,
        excluded: ExcludeList,
    ) -> None:
        self.app = app
        self.details = details
        self.tracer = platform_tracer
        self.excluded = excluded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.excluded.url_disabled(scope["path"]):
            with untraced():
                await self.app(scope, receive, send)
            return
        name, attributes = self.details(scope)
        span = self.tracer.start_span(name, kind=SpanKind.SERVER, attributes=attributes)
        context = trace.set_span_in_context(span)
        if not span.is_recording():
            with untraced(context):
                await self.app(scope, receive, send)
            return
        span.set_attributes(_request_attributes(scope))

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status: int = message["status"]
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            await send(message)

        token = attach(context)
        try:
            await self.app(scope, receive, send_with_status)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            detach(token)
            span.end()


def _request_attributes(scope: Scope) -> dict[str, Any]:
    """What a sampled server span says of its request: method, scheme, path (no query),
    protocol, the server's and the client's address, the user agent."""
    attributes: dict[str, Any] = {
        "http.request.method": scope.get("method", ""),
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope.get("path", ""),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if server := scope.get("server"):
        host, port = server
        attributes["server.address"] = host
        if port is not None:  # None on a Unix socket
            attributes["server.port"] = port
    if client := scope.get("client"):
        attributes["client.address"] = client[0]
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
    return attributes


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
