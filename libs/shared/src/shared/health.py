"""``/health/live`` (the process answers) and ``/health/ready`` (its dependencies answer)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from shared.errors import problem_response

ReadinessCheck = Callable[[], Awaitable[None]]

logger = logging.getLogger(__name__)


async def _run_check(name: str, check: ReadinessCheck, seconds: float) -> bool:
    try:
        await asyncio.wait_for(check(), seconds)
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        logger.warning("readiness check %s failed: %r", name, exc)
        return False
    return True


async def failing_checks(checks: Mapping[str, ReadinessCheck], *, seconds: float) -> list[str]:
    """Run every check concurrently, each bounded by ``seconds``; the names of those failing."""
    results = await asyncio.gather(
        *(_run_check(name, check, seconds) for name, check in checks.items())
    )
    return [name for name, ok in zip(checks, results, strict=True) if not ok]


def not_ready_detail(failing: list[str]) -> str:
    return f"Not ready: {', '.join(failing)} unavailable."


def health_router() -> APIRouter:
    """Checks are read from ``app.state.readiness_checks`` (name → coroutine function) and
    the time allowed each from ``app.state.settings.readiness_timeout_seconds``."""
    router = APIRouter(prefix="/health", tags=["health"], include_in_schema=False)

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(request: Request) -> Response:
        checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
        timeout: float = request.app.state.settings.readiness_timeout_seconds
        failing = await failing_checks(checks, seconds=timeout)
        if failing:
            return problem_response(503, not_ready_detail(failing))
        return JSONResponse({"status": "ok", "checks": {name: "ok" for name in checks}})

    return router
