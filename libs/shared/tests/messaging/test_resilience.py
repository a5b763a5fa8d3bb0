"""Broker restarts, competing relays and consumers, graceful stop, readiness."""

from __future__ import annotations

import asyncio
import subprocess

import aio_pika
from fastapi import FastAPI
from sqlalchemy import text

from shared.health import ReadinessCheck
from shared.messaging import Broker, register_broker_check, run_worker
from shared.messaging.consumer import Consumer

from .conftest import EVENT_TYPE, Harness, ProcessedEvent, metric, wait_until


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


async def _broker_answers() -> bool:
    try:
        connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1/", timeout=2)
    except Exception:
        return False
    await connection.close()
    return True


async def test_consumers_resume_after_a_broker_restart_and_handle_every_event_once(
    harness: Harness,
) -> None:
    name = "restart"
    await harness.consumer(name)
    await harness.relay()
    before = await harness.emit(30)
    await wait_until(lambda: harness.applied(name, 30), what="first half handled")

    try:
        await asyncio.to_thread(_rabbitmqctl, "stop_app")
        during = await harness.emit(30)  # committed while the broker is away
    finally:
        await asyncio.to_thread(_rabbitmqctl, "start_app")
        await asyncio.to_thread(_rabbitmqctl, "await_startup")
        await wait_until(_broker_answers, what="broker back", seconds=60)

    after = await harness.emit(30)
    await wait_until(lambda: harness.applied(name, 90), what="every event handled", seconds=60)
    assert await harness.effects(name) == dict.fromkeys([*before, *during, *after], 1)


async def test_a_relay_whose_database_connection_was_cut_reconnects_and_loses_nothing(
    harness: Harness,
) -> None:
    name = "relay-cut"
    await harness.consumer(name)
    await harness.relay()
    before = await harness.emit(20)
    await wait_until(lambda: harness.applied(name, 20), what="first events handled")

    # The relay's own connection (its batches and its LISTEN), found as an operator would.
    async with harness.engine.connect() as connection:
        cut = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": f"{harness.settings.service_name}-relay"},
        )
    assert cut == 1

    after = await harness.emit(20)  # no NOTIFY reaches a cut LISTEN: polling finds them
    await wait_until(lambda: harness.applied(name, 40), what="every event handled")
    assert await harness.effects(name) == dict.fromkeys([*before, *after], 1)
    assert await harness.unsent() == 0


async def test_two_relays_and_two_consumers_apply_each_effect_exactly_once(
    harness: Harness,
) -> None:
    name = "competing"
    first = await harness.consumer(name)
    second = await harness.consumer(name)  # same purpose, same queue, another connection
    assert first.queue.name == second.queue.name
    await harness.relay()
    await harness.relay()

    batches = await asyncio.gather(*(harness.emit(50) for _ in range(8)))
    ids = [event_id for batch in batches for event_id in batch]
    await wait_until(lambda: harness.applied(name, 400), what="400 handled")
    await wait_until(lambda: _all_sent(harness), what="all marked sent")

    assert await harness.effects(name) == dict.fromkeys(ids, 1)
    published = metric("messaging_events_published_total", event_type=EVENT_TYPE)
    assert published >= 400  # the counter is process-wide; exact counts are in effects


async def _all_sent(harness: Harness) -> bool:
    return await harness.unsent() == 0


async def test_worker_stop_drains_in_flight_messages_and_flushes_the_relay(
    harness: Harness,
) -> None:
    name = "worker-drain"
    release = asyncio.Event()
    started = asyncio.Event()
    record = harness.recording_handler(name)

    async def slow(session: object, event: object) -> None:
        started.set()
        await release.wait()
        await record(session, event)  # type: ignore[arg-type]

    consumer = Consumer(name=name, handlers={EVENT_TYPE: slow}, inbox=ProcessedEvent)
    harness.purposes.add(name)
    # Declared up front, as a deployment's start-up does, so the first publish is routable.
    await harness.consumer(name, slow, start=False)
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(
            harness.settings,
            consumers=[consumer],
            outbox=harness.outbox,
            stop=stop,
            engine=harness.engine,
            install_signal_handlers=False,
        )
    )
    ids = await harness.emit(3)
    await asyncio.wait_for(started.wait(), 30)
    stop.set()  # what SIGTERM does
    await asyncio.sleep(0.2)
    assert not worker.done()  # still draining the handlers in flight
    release.set()
    await asyncio.wait_for(worker, 30)

    assert await harness.unsent() == 0  # the relay flushed before exiting
    # Whatever was not yet delivered stayed in the queue; a new worker finishes the job.
    await harness.consumer(name)
    await wait_until(lambda: harness.applied(name, 3), what="all 3 handled")
    assert await harness.effects(name) == dict.fromkeys(ids, 1)


async def test_broker_readiness_check_follows_the_connection(harness: Harness) -> None:
    app = FastAPI()
    checks: dict[str, ReadinessCheck] = {}
    app.state.readiness_checks = checks
    broker = Broker(harness.settings)
    await broker.connect()
    register_broker_check(app, broker)

    await checks["broker"]()
    await broker.close()
    try:
        await checks["broker"]()
    except ConnectionError:
        pass
    else:
        raise AssertionError("a closed broker must not be ready")
