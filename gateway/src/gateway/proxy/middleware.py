"""The gateway's front door for /api: token check, rate limit, then proxy or own routes.

Pure ASGI, innermost of the platform middleware (inside request id, metrics and body
limit), so a proxied request never pays for FastAPI's routing and dependency machinery.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.ratelimit import RateLimitExceeded
from gateway.runtime import GatewayRuntime
from shared.asgi import header_value
from shared.auth import NotAuthenticated, Principal, authenticate
from shared.errors import DomainError, problem_response

API_PREFIX = "/api/"


async def _answer(error: DomainError, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem_response(
        error.status, error.detail, title=error.title, type_=error.type, headers=error.headers
    )
    await response(scope, receive, send)


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, *, runtime: GatewayRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return

        runtime = self.runtime
        route = runtime.routes.match(scope["path"])
        principal: Principal | None = None
        refused: NotAuthenticated | None = None
        authorization = header_value(scope, b"authorization")
        if authorization is not None:
            try:
                principal = authenticate(runtime.verifier, authorization.decode("latin-1"))
            except NotAuthenticated as exc:
                refused = exc

        # Counted per user when the token is valid, else per address: a flood of bad
        # tokens is limited like any anonymous traffic.
        if principal is not None:
            identity = f"user:{principal.user_id}"
        else:
            client = scope.get("client")
            identity = f"addr:{client[0] if client else 'unknown'}"
        try:
            await runtime.rate_limiter.enforce(runtime.rate_limiter.api, "api", identity)
        except (RateLimitExceeded, DomainError) as exc:
            await _answer(exc, scope, receive, send)
            return

        if route is None:  # the gateway's own API (auth): FastAPI routes and dependencies
            await self.app(scope, receive, send)
            return
        if refused is not None:
            await _answer(refused, scope, receive, send)
            return
        scope["route"] = route  # labels the request's metrics with the prefix, not the path
        await runtime.upstreams.forward(scope, receive, send, route)
