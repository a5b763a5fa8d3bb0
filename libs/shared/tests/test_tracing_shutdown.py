"""A service stopped by SIGTERM still exports the spans it had queued.

uvicorn re-raises the SIGTERM it shut down on, so the SDK's exit hook never runs: the
server shuts the provider down itself (``shared.server.Server``). A real process, tracing
to a local OTLP/HTTP receiver with an export delay far beyond the test, stopped right after
its one request; its spans arrive, and none records the query string or the user agent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shared.testing.ports import free_port
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


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            # A probe: no span, so the only span is the request's below.
            httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"the service did not start:\n{log.read_text()}")


def test_a_service_stopped_by_sigterm_exports_its_spans_first(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "service.log"
    with OtlpReceiver() as receiver:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        environment = {
            **inherited,
            "COMMERCE_ENVIRONMENT": "development",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "600000",  # only a shutdown exports within the test
        }
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-c", SERVICE, str(port)],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_until_listening(port, process, log)
            answer = httpx.get(
                f"http://127.0.0.1:{port}/orders?email=shopper%40example.com",
                headers={"user-agent": "secret-agent/7"},
                timeout=5,
            )
            assert answer.status_code == 200
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        spans = receiver.spans()
    assert [(span.service, span.kind, span.name) for span in spans] == [
        ("probe", "SERVER", "GET /orders")
    ], log.read_text()
    texts = [str(value) for span in spans for value in span.attributes.values()]
    for secret in ("shopper", "secret-agent"):
        assert not any(secret in text for text in texts), secret
