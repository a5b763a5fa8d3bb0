"""The outbox's upkeep runs as the worker's periodic jobs, not inside the relay's loop: sent
rows past the retention are pruned, and the backlog and its lag reported even while the
relay cannot publish."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from shared.contracts.inventory import StockLow
from shared.messaging import Broker, Envelope, OutboxRelay, run_worker
from shared.messaging.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_UNSENT_AGE

from .conftest import SCHEMA, Harness, OutboxEvent, metric, wait_until

TABLE = f"{SCHEMA}.outbox"  # the metrics' table label


async def test_the_worker_prunes_sent_rows_and_reports_the_lag_while_nothing_can_be_sent(
    harness: Harness,
) -> None:
    # No queue is bound in this test's namespace: the broker returns every publication, so
    # the row left unsent stays unsent and the relay's loop keeps failing and retrying.
    events = [Envelope.new(StockLow(sku="SKU-U", available=n, reorder_point=1)) for n in range(3)]
    async with harness.sessionmaker() as session, session.begin():
        await harness.outbox.add_many(session, events)
    retention = timedelta(hours=harness.settings.outbox_retention_hours)
    past, recent = datetime.now(UTC) - retention - timedelta(hours=1), datetime.now(UTC)
    async with harness.engine.begin() as connection:
        for event, sent_at in [(events[0], past), (events[1], recent)]:
            await connection.execute(
                update(OutboxEvent).where(OutboxEvent.id == event.id).values(sent_at=sent_at)
            )
        await connection.execute(  # events[2]: unsent for an hour
            update(OutboxEvent)
            .where(OutboxEvent.id == events[2].id)
            .values(created_at=recent - timedelta(hours=1))
        )
    failures_before = _publish_failures()
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(
            harness.settings,
            outbox=harness.outbox,
            stop=stop,
            engine=harness.engine,
            install_signal_handlers=False,
        )
    )
    try:

        async def pruned() -> bool:
            return metric("worker_job_runs_total", job=f"{TABLE} pruning", outcome="done") >= 1

        async def relay_failing() -> bool:
            return _publish_failures() > failures_before

        async def backlog_reported() -> bool:
            return metric("messaging_outbox_backlog", table=TABLE) == 1

        await wait_until(pruned, what="the pruning job ran")
        assert set(await _ids(harness)) == {events[1].id, events[2].id}
        await wait_until(relay_failing, what="the relay tried and failed to publish")
        OUTBOX_BACKLOG.labels(TABLE).set(-1)  # only a reading from now on brings it back
        await wait_until(backlog_reported, what="the backlog read while the relay fails")
        assert metric("messaging_outbox_oldest_unsent_age_seconds", table=TABLE) >= 3600
        assert await harness.unsent() == 1
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
    OUTBOX_OLDEST_UNSENT_AGE.labels(TABLE).set(0)  # no lag left behind for other tests


def _publish_failures() -> float:
    return metric("messaging_publish_failures_total", event_type=StockLow.event_type)


async def _ids(harness: Harness) -> list[uuid.UUID]:
    async with harness.engine.connect() as connection:
        return list((await connection.execute(select(OutboxEvent.id))).scalars())


async def test_the_relay_offers_its_pruning_and_backlog_reading_as_jobs_at_their_intervals(
    harness: Harness,
) -> None:
    relay = OutboxRelay(
        settings=harness.settings,
        engine=harness.engine,
        broker=Broker(harness.settings),  # never connected: the jobs do not publish
        outbox=harness.outbox,
    )
    pruning, reading = relay.outbox_pruning(), relay.backlog_reading()
    assert (pruning.name, pruning.interval, pruning.pause_first) == (f"{TABLE} pruning", 300, False)
    assert (reading.name, reading.interval, reading.pause_first) == (f"{TABLE} backlog", 5, False)
