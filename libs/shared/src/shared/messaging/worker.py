"""The worker entry point every service shares: consumers, outbox relay, periodic jobs.

On SIGTERM (or SIGINT) the worker stops taking messages and starting job runs, finishes the
messages and runs in flight, flushes the relay, closes the broker and the engine, and
returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from functools import partial
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, create_sessionmaker, ping
from shared.health import ReadinessCheck
from shared.logging import configure_logging
from shared.messaging.broker import Broker
from shared.messaging.consumer import Consumer, RunningConsumer
from shared.messaging.jobs import PeriodicJob, PeriodicJobs
from shared.messaging.outbox import Outbox
from shared.messaging.probe import start_probe
from shared.messaging.relay import OutboxRelay
from shared.runtime import settle_garbage_collector
from shared.settings import BaseServiceSettings
from shared.tracing import configure_tracing

logger = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)


async def run_worker(
    settings: BaseServiceSettings,
    *,
    consumers: Sequence[Consumer] = (),
    outbox: Outbox | None = None,
    jobs: Sequence[PeriodicJob] = (),
    stop: asyncio.Event | None = None,
    engine: AsyncEngine | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run ``consumers``, ``jobs`` (with each consumer's inbox pruning and depth reading) and,
    when ``outbox`` is given, its relay (with its pruning and backlog reading), until ``stop``
    is set (or SIGTERM/SIGINT arrives). Topology is declared before anything is consumed; the
    jobs start at once, broker or not."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    own_engine = engine is None
    engine = engine or create_engine(settings, role="worker")
    broker = Broker(settings)
    running = [
        RunningConsumer(
            c, settings=settings, broker=broker, sessionmaker=create_sessionmaker(engine)
        )
        for c in consumers
    ]
    relay = (
        None
        if outbox is None
        else OutboxRelay(settings=settings, engine=engine, broker=broker, outbox=outbox)
    )
    periodic = PeriodicJobs(
        [
            *jobs,
            *(consumer.inbox_pruning() for consumer in running),
            *(consumer.depth_reading() for consumer in running),
            *((relay.outbox_pruning(), relay.backlog_reading()) if relay is not None else ()),
        ]
    )
    relay_started = False
    probe: web.AppRunner | None = None
    try:
        periodic.start()
        if settings.worker_port:
            checks: dict[str, ReadinessCheck] = {
                "database": partial(ping, engine),
                "broker": broker.check,
            }
            probe = await start_probe(
                checks,
                host=settings.host,
                port=settings.worker_port,
                check_seconds=settings.readiness_timeout_seconds,
            )
        await broker.connect()
        for consumer in running:
            await consumer.declare()
        if relay is not None:
            await relay.start()
            relay_started = True
        for consumer in running:
            await consumer.start()
        logger.info(
            "worker started: %d consumers, %d jobs, relay %s",
            len(running),
            len(jobs),
            relay is not None,
        )
        await stop.wait()
        logger.info("worker stopping")
    finally:
        timeout = settings.worker_shutdown_timeout_seconds
        await asyncio.gather(
            periodic.stop(), *(consumer.stop(drain_seconds=timeout) for consumer in running)
        )
        if relay is not None and relay_started:
            # After the consumers and the jobs: their events go out too.
            await relay.stop(drain_seconds=timeout)
        await broker.close()
        if probe is not None:
            await probe.cleanup()
        if own_engine:
            await engine.dispose()
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)


def worker_main(settings: SettingsT, run: Callable[[SettingsT], Coroutine[Any, Any, None]]) -> None:
    """A service's ``python -m <service>.worker``: ``prepare_worker_process``, then
    ``run(settings)`` (the service's wiring around ``run_worker``) on uvloop."""
    import uvloop

    prepare_worker_process(settings)
    uvloop.run(run(settings))


def prepare_worker_process(settings: BaseServiceSettings) -> None:
    """What a worker process does before its loop starts: logging, tracing, its CPU priority
    (``worker_nice`` below the apps'; lowering one's own priority needs no privilege) and its
    garbage collector (``shared.runtime``)."""
    configure_logging(settings)
    configure_tracing(f"{settings.service_name}-worker")  # only if OTEL_* ask (shared.tracing)
    os.nice(settings.worker_nice)
    settle_garbage_collector()
