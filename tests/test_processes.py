"""Each process boots as `python -m <service>`, answers ready, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
import pytest

from shared.testing.ports import free_port
from tests.services import SERVICES, Service

pytestmark = pytest.mark.slow


async def wait_ready(
    url: str, process: asyncio.subprocess.Process, seconds: float
) -> httpx.Response:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(int(seconds * 10)):
            if process.returncode is not None:
                break
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
async def test_process_boots_answers_ready_and_stops_on_sigterm(
    service: Service, database: str
) -> None:
    port = probe_port = free_port()
    env = {**os.environ, f"{service.name.upper()}_PORT": str(port)}
    if service.name == "gateway":  # its readiness is on its internal port only
        probe_port = free_port()
        env["GATEWAY_INTERNAL_PORT"] = str(probe_port)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        service.name,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        ready = f"http://127.0.0.1:{probe_port}/health/ready"
        response = await wait_ready(ready, process, seconds=20)
        assert response.json()["checks"]["database"] == "ok"
        assert response.headers["x-request-id"]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    # uvicorn finishes its graceful shutdown, then re-raises the signal it caught, as a
    # well-behaved Unix process does: killed by SIGTERM, after a clean shutdown.
    assert process.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
    assert b'"message":"Application shutdown complete."' in stderr


WORKERS = [service for service in SERVICES if service.name != "gateway"]


@pytest.mark.parametrize("service", WORKERS, ids=lambda service: service.name)
async def test_worker_boots_reports_ready_and_stops_on_sigterm(
    service: Service, database: str
) -> None:
    port = free_port()
    env = {**os.environ, f"{service.name.upper()}_WORKER_PORT": str(port)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"{service.name}.worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        response = await wait_ready(f"http://127.0.0.1:{port}/health/ready", process, seconds=30)
        assert response.json()["checks"] == {"database": "ok", "broker": "ok"}
        # Workers yield the cores to the apps (COMMERCE_WORKER_NICE, 10 by default).
        expected = min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == expected
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=40)
    assert process.returncode == 0, stderr.decode()[-2000:]
