"""The worker's probe server: ``/health/live``, ``/health/ready`` and ``/metrics``.

A worker has no HTTP app, yet orchestrators need to know it is alive and connected, and
Prometheus needs its messaging metrics. aiohttp's server runs on the worker's loop without
touching signal handlers (uvicorn's would take SIGTERM from the worker's graceful stop).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from shared.errors import PROBLEM_CONTENT_TYPE, Problem
from shared.health import ReadinessCheck, failing_checks, not_ready_detail

logger = logging.getLogger(__name__)


def probe_app(checks: Mapping[str, ReadinessCheck], *, check_seconds: float) -> web.Application:
    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        failing = await failing_checks(checks, seconds=check_seconds)
        if failing:
            problem = Problem(
                title="Service Unavailable", status=503, detail=not_ready_detail(failing)
            )
            return web.Response(
                body=orjson.dumps(problem.model_dump(exclude_none=True)),
                status=503,
                content_type=PROBLEM_CONTENT_TYPE,
            )
        return web.json_response({"status": "ok", "checks": {name: "ok" for name in checks}})

    async def metrics(request: web.Request) -> web.Response:
        # aiohttp wants the charset apart from the content type.
        content_type, _, charset = CONTENT_TYPE_LATEST.partition("; charset=")
        return web.Response(
            body=generate_latest(REGISTRY), content_type=content_type, charset=charset or None
        )

    app = web.Application()
    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
    return app


async def start_probe(
    checks: Mapping[str, ReadinessCheck], *, host: str, port: int, check_seconds: float
) -> web.AppRunner:
    """Serve the probe on ``host:port``; the caller cleans the runner up at stop."""
    runner = web.AppRunner(probe_app(checks, check_seconds=check_seconds), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    logger.info("worker probe listening on http://%s:%d", host, port)
    return runner
