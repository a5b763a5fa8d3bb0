"""A service stopped by SIGTERM still exports the spans it had queued.

uvicorn re-raises the SIGTERM it shut down on, so the SDK's exit hook never runs: the
server shuts the provider down itself (``shared.server.Server``). A real process, tracing
to a local OTLP/HTTP receiver with an export delay far beyond the test, stopped right after
its one request; its spans arrive, and none records the query string or the user agent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from shared.testing.ports import free_port
from shared.testing.processes import serving
from tests.harness.otlp import OtlpReceiver

pytestmark = pytest.mark.slow

SERVICE = """
import sys
from typing import ClassVar

from fastapi import FastAPI

from shared.server import serve
from shared.settings import BaseServiceSettings


class ProbeSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "probe"


def create_app(settings: ProbeSettings) -> FastAPI:
    app = FastAPI()

    @app.get("/orders")
    async def orders(email: str = "") -> dict[str, str]:
        return {"orders": "none"}

    return app


serve(create_app, ProbeSettings(port=int(sys.argv[1])))
"""


def test_a_service_stopped_by_sigterm_exports_its_spans_first(tmp_path: Path) -> None:
    port = free_port()
    with OtlpReceiver() as receiver:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        environment = {
            **inherited,
            "COMMERCE_ENVIRONMENT": "development",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "600000",  # only a shutdown exports within the test
        }
        log = tmp_path / "service.log"
        # Health paths make no span: the only span is the request's.
        with serving(
            [sys.executable, "-c", SERVICE, str(port)],
            env=environment,
            log=log,
            ready_url=f"http://127.0.0.1:{port}/health/live",
        ):
            answer = httpx.get(
                f"http://127.0.0.1:{port}/orders?email=shopper%40example.com",
                headers={"user-agent": "secret-agent/7"},
                timeout=5,
            )
            assert answer.status_code == 200
        spans = receiver.spans()
    assert [(span.service, span.kind, span.name) for span in spans] == [
        ("probe", "SERVER", "GET /orders")
    ], log.read_text()
    texts = [str(value) for span in spans for value in span.attributes.values()]
    for secret in ("shopper", "secret-agent"):
        assert not any(secret in text for text in texts), secret
