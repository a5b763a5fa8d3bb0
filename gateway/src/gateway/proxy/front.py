"""The gateway's application: a proxied request takes a shorter middleware stack.

FastAPI wraps every request in three middlewares of its own (a last-resort error page,
exception telemetry and its own body limit) around the platform's. A proxied request never
reaches FastAPI's routing, and the platform's ``RequestContextMiddleware`` already turns an
unexpected exception into a 500 problem with the request id, so for those requests the
gateway runs the user middleware (CORS, request id and metrics, then the proxy) without
FastAPI's three, a saving on every proxied request (bench/CHANGES.md). The body limit and
gzip are left out of that stack too, because the proxy applies them itself
(``gateway.proxy.upstream``), where they cost less. Everything else (the gateway's own
routes, docs, health, metrics, lifespan) goes through FastAPI's full stack.

The probes and metrics that are not for the public (``INTERNAL_PATHS``) are answered only on
the internal port, which answers nothing else; ``/health/live`` is answered on both.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.routing import iter_route_contexts
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.compat.starlette import ComposedStackApp, wrap
from gateway.proxy.middleware import API_PREFIX
from gateway.proxy.routes import RouteTable
from gateway.proxy.tracing import traced
from shared.asgi import BodySizeLimitMiddleware, request_id_of
from shared.errors import problem_response

# What the proxy does itself for the requests it forwards.
DONE_BY_THE_PROXY: tuple[object, ...] = (GZipMiddleware, BodySizeLimitMiddleware)
INTERNAL_PATHS = frozenset({"/health/ready", "/metrics"})
_LIVENESS = "/health/live"


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    # Answered before the request id middleware: the id is given here instead.
    response = problem_response(
        404, "Nothing is served at this path.", request_id=request_id_of(scope)
    )
    await response(scope, receive, send)


async def _never_reached(scope: Scope, receive: Receive, send: Send) -> None:
    # The proxy answers every request this stack is given (its path matched a route).
    raise RuntimeError(f"a proxied request fell through the proxy: {scope['path']}")


class ProxyFirst:
    """Sends requests for a proxied path to ``proxied``, everything else to ``full``; the
    internal paths only on ``internal_port`` (0: nowhere), which serves nothing else."""

    def __init__(
        self, *, full: ASGIApp, proxied: ASGIApp, routes: RouteTable, internal_port: int
    ) -> None:
        self.full = full
        self.proxied = proxied
        self.routes = routes
        self.internal_port = internal_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.full(scope, receive, send)
            return
        path: str = scope["path"]
        server = scope.get("server")
        if server is not None and server[1] == self.internal_port:
            internal = path in INTERNAL_PATHS or path == _LIVENESS
            await (self.full if internal else _not_found)(scope, receive, send)
        elif path.startswith(API_PREFIX) and self.routes.match(path) is not None:
            await self.proxied(scope, receive, send)
        elif path in INTERNAL_PATHS:
            await _not_found(scope, receive, send)
        else:
            await self.full(scope, receive, send)


class GatewayApp(ComposedStackApp):
    """FastAPI, with the proxied paths dispatched before FastAPI's own middleware."""

    def compose_stack(self, full: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
        kept = [m for m in middleware if m.cls not in DONE_BY_THE_PROXY]
        runtime = self.state.runtime
        stack = ProxyFirst(
            full=full,
            proxied=wrap(_never_reached, kept),
            routes=runtime.routes,
            internal_port=runtime.settings.internal_port,
        )
        # Server spans when tracing is on (gateway.proxy.tracing); the stack itself otherwise.
        # Every route of the app as served: an included router's too (FastAPI keeps one entry
        # for each, without a path of its own).
        own_paths = [
            path
            for route in iter_route_contexts(self.routes)
            if isinstance(path := route.path, str)
        ]
        return traced(stack, routes=runtime.routes, own_paths=own_paths)
