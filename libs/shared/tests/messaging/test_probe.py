"""A worker answers /health/live, /health/ready and /metrics on its probe port."""

from __future__ import annotations

import asyncio
import re

import httpx

from shared.messaging import run_worker
from shared.testing.ports import free_port

from .conftest import Harness, make_settings, wait_until


async def test_worker_probe_reports_database_and_broker_and_serves_metrics(
    harness: Harness,
) -> None:
    port = free_port()
    settings = make_settings(worker_port=port, broker_namespace=harness.settings.broker_namespace)
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(
            settings,
            outbox=harness.outbox,
            stop=stop,
            engine=harness.engine,
            install_signal_handlers=False,
        )
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/health/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, what="worker probe ready")
            body = (await client.get("/health/ready")).json()
            assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
            assert (await client.get("/health/live")).json() == {"status": "ok"}
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200

            async def backlog_sampled() -> bool:
                text = (await client.get("/metrics")).text
                return re.search(r"^messaging_outbox_backlog\{.+\} \d", text, re.M) is not None

            await wait_until(backlog_sampled, what="a sample of this outbox's backlog")
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)

    async with httpx.AsyncClient(timeout=2) as client:
        try:
            await client.get(f"{base}/health/live")
            closed = False
        except httpx.TransportError:
            closed = True
    assert closed, "the probe stops with the worker"
