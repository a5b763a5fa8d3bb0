"""Server spans, one per HTTP request: the services' and the gateway's alike (docs/tracing.md).

``ServerSpans`` starts a request's span first, named by its route and a child of the W3C
context the request carries, so that the sampler decides before anything else is built (the
ASGI instrumentation would gather the request's attributes and wrap its messages first). A
request whose context says not sampled, or whose root the sampler drops, runs untraced with
that context current (``shared.tracing.unsampled``). A sampled one gets the request's
attributes, in the stable semantic conventions: never its query string, body or a header
value (the gateway alone adds the client's user agent). Probes and scrapes get no span.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from fastapi import FastAPI
from fastapi.routing import RouteContext, iter_route_contexts
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import ExcludeList, parse_excluded_urls
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.tracing import setup
from shared.tracing.propagation import extract
from shared.tracing.unsampled import sampled, untraced

# Probes and scrapes are not requests anyone follows: never a server span for them.
EXCLUDED_URLS = "/health/live$,/health/ready$,/metrics$"
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})

SpanDetails = Callable[[Mapping[str, Any]], tuple[str, dict[str, Any]]]
"""A request's span name and first attributes (its route), from its scope."""


def excluded_requests(framework: str) -> ExcludeList:
    """The paths that get no server span: probes and scrapes always, and those of
    ``OTEL_PYTHON_<framework>_EXCLUDED_URLS`` (``FASTAPI`` for the services, ``ASGI`` for
    the gateway), else of ``OTEL_PYTHON_EXCLUDED_URLS``."""
    configured = (
        os.environ.get(f"OTEL_PYTHON_{framework}_EXCLUDED_URLS", "").strip()
        or os.environ.get("OTEL_PYTHON_EXCLUDED_URLS", "").strip()
    )
    return parse_excluded_urls(",".join(filter(None, (EXCLUDED_URLS, configured))))


def traced_app(app: FastAPI) -> ASGIApp:
    """A service's ``app`` in server spans named by its routes, or ``app`` itself when
    tracing is off: what the server runs."""
    platform_tracer = setup.tracer()
    if platform_tracer is None:
        return app
    return ServerSpans(
        app, route_details(app), platform_tracer, excluded=excluded_requests("FASTAPI")
    )


def route_details(app: FastAPI) -> SpanDetails:
    """Names a request's server span by the route template it matches (``POST /orders``,
    ``GET /orders/{order_id}``), never by its raw path: names stay few."""

    routes: list[RouteContext] = []

    def details(scope: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        method: str = scope.get("method") or "HTTP"
        if not routes:  # the routes of the app as served, its included routers' among them
            routes.extend(iter_route_contexts(app.router.routes))
        # A HEAD is routed as its GET (shared.methods); a method the path does not take (405)
        # is still named by the path's template.
        probe = cast(Scope, {**scope, "method": "GET"} if method == "HEAD" else scope)
        partial: str | None = None
        for route in routes:
            match, _ = route.matches(probe)
            template = route.path
            if match is Match.NONE or not isinstance(template, str):
                continue
            if match is Match.FULL:
                return f"{method} {template}", {"http.route": template}
            partial = partial or template
        if partial is not None:
            return f"{method} {partial}", {"http.route": partial}
        return method, {}

    return details


class ServerSpans:
    """Pure ASGI: each HTTP request in a server span (module doc). ``details`` names it;
    ``excluded`` paths get none; ``with_user_agent`` records the client's user agent."""

    def __init__(
        self,
        app: ASGIApp,
        details: SpanDetails,
        platform_tracer: trace.Tracer,
        *,
        excluded: ExcludeList,
        with_user_agent: bool = False,
    ) -> None:
        self.app = app
        self.details = details
        self.tracer = platform_tracer
        self.excluded = excluded
        self.with_user_agent = with_user_agent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.excluded.url_disabled(scope["path"]):
            with untraced():
                await self.app(scope, receive, send)
            return
        parent = _parent(scope["headers"])
        if sampled(parent) is False:  # whoever sent it decided: nobody records this trace
            with untraced(parent):
                await self.app(scope, receive, send)
            return
        name, attributes = self.details(scope)
        span = self.tracer.start_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        context = trace.set_span_in_context(span, parent)
        if not span.is_recording():
            with untraced(context):
                await self.app(scope, receive, send)
            return
        span.set_attributes(request_attributes(scope, with_user_agent=self.with_user_agent))

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


def _parent(headers: Iterable[tuple[bytes, bytes]]) -> Context:
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in TRACE_HEADERS
    }
    return extract(carrier) if carrier else Context()


def request_attributes(scope: Scope, *, with_user_agent: bool = False) -> dict[str, Any]:
    """What a sampled server span says of its request: method, scheme, path (no query),
    protocol, the server's and the client's address, and the user agent if asked."""
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
    if with_user_agent:
        for name, value in scope.get("headers", ()):
            if name == b"user-agent":
                attributes["user_agent.original"] = value.decode("latin-1")
    return attributes
