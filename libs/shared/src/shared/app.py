"""The one way a service or the gateway builds its FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.middleware import Middleware

from shared.asgi import BodySizeLimitMiddleware, RequestContextMiddleware
from shared.db import create_engine, create_sessionmaker, ping
from shared.errors import install_error_handlers
from shared.health import ReadinessCheck, health_router
from shared.methods import HeadAsGetMiddleware
from shared.metrics import metrics_router
from shared.openapi import install_problem_documentation
from shared.runtime import settle_garbage_collector
from shared.settings import BaseServiceSettings

ExtraLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    settings: BaseServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    extra_lifespan: ExtraLifespan | None = None,
    app_class: type[FastAPI] = FastAPI,
    body_limits: Sequence[tuple[str, int]] = (),
    inner_middleware: Sequence[Middleware] = (),
) -> FastAPI:
    """Build an app with the platform's errors, middleware, health, metrics and database.

    The engine is created in the lifespan, not at import, and disposed of at shutdown.
    ``extra_lifespan`` runs inside, with the engine ready; it may add readiness checks.
    ``app_class`` is FastAPI or a subclass of it (the gateway's builds its own stack).
    ``body_limits``: paths (regular expressions) whose bodies may exceed ``max_body_bytes``.
    ``inner_middleware``: run inside the platform's, the first one outermost. Inside them
    all, every GET route answers HEAD as well (``shared.methods``).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        checks: dict[str, ReadinessCheck] = {"database": partial(ping, engine)}
        app.state.readiness_checks = checks
        try:
            async with extra_lifespan(app) if extra_lifespan else nullcontext():
                # What start-up built lives as long as the process: moved out of the
                # collector's sight, full collections no longer walk it on the request path.
                settle_garbage_collector()
                yield
        finally:
            await engine.dispose()

    # FastAPI's native OpenTelemetry looks up the global providers (and the environment) on
    # every request even when none is configured; the platform exports Prometheus metrics.
    telemetry_off: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    # /docs and /openapi.json only where they are meant to be served (production: off).
    served = settings.docs_served
    app = app_class(
        title=title,
        version="1.0.0",
        lifespan=lifespan,
        telemetry=telemetry_off,
        openapi_url="/openapi.json" if served else None,
        docs_url="/docs" if served else None,
        redoc_url="/redoc" if served else None,
        middleware=[*inner_middleware, Middleware(HeadAsGetMiddleware)],
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_problem_documentation(app)
    # Added innermost first: a request meets RequestContext (id, log, metrics), then the limit.
    app.add_middleware(
        BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes, route_limits=body_limits
    )
    app.add_middleware(RequestContextMiddleware, access_log=settings.access_log)
    app.include_router(health_router())
    app.include_router(metrics_router())
    for router in routers:
        app.include_router(router)
    return app
