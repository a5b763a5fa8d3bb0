"""The gateway HTTP application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware

from gateway.config import GatewaySettings, get_settings
from gateway.cors import AllowListCORSMiddleware
from gateway.identity.router import router as identity_router
from gateway.jwks import router as jwks_router
from gateway.openapi import install_docs
from gateway.proxy.compression import LEVEL
from gateway.proxy.front import GatewayApp
from gateway.proxy.metrics import unwatch_pool, watch_pool
from gateway.proxy.middleware import GatewayMiddleware
from gateway.ratelimit import RateLimiter
from gateway.runtime import GatewayRuntime
from shared.app import create_service_app

EXPOSED_HEADERS = [
    "Location",
    "ETag",
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
]
ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-None-Match",
    "X-Request-ID",
]


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    runtime = GatewayRuntime.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limiter = RateLimiter(settings)
        runtime.limiter = limiter
        await runtime.upstreams.start()
        watch_pool(runtime.upstreams)
        if not settings.rate_limit_fail_open:
            # Only then does a Redis outage refuse requests; failing open, this gateway
            # still serves (unlimited), so it must stay in rotation.
            app.state.readiness_checks["redis"] = limiter.check
        try:
            yield
        finally:
            unwatch_pool(runtime.upstreams)
            await runtime.upstreams.close()
            await limiter.close()
            runtime.limiter = None

    app = create_service_app(
        settings,
        title="Commerce API",
        routers=[identity_router, jwks_router],
        extra_lifespan=lifespan,
        app_class=GatewayApp,
        # Innermost of the platform middleware: a proxied request already has its request
        # id, metrics and body limit, and skips FastAPI's routing altogether (and, through
        # GatewayApp, FastAPI's own outer middleware: gateway.proxy.front).
        inner_middleware=[Middleware(GatewayMiddleware, runtime=runtime)],
    )
    app.state.runtime = runtime
    app.state.token_verifier = runtime.verifier  # what shared.auth's dependencies use
    install_docs(app, runtime)

    # Outermost: compression of whatever the gateway answers, CORS on every answer.
    app.add_middleware(GZipMiddleware, minimum_size=settings.gzip_min_bytes, compresslevel=LEVEL)
    if settings.cors_allow_origins:
        app.add_middleware(
            AllowListCORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    return app
