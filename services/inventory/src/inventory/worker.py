"""`python -m inventory.worker`: event consumers, outbox relay, and the periodic jobs (the
reservation sweep and the media sweep) the shared worker runner runs.

SIGTERM or SIGINT stops taking messages, drains those in flight, flushes the relay, lets
the current sweeps finish, and exits.
"""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.catalog.cache import CatalogCache
from inventory.config import InventorySettings, get_settings
from inventory.events import outbox
from inventory.handlers import reservations_consumer, stock_alerts_consumer
from inventory.media.sweep import sweep_media
from inventory.products import staleness
from inventory.sweeper import sweep
from shared.db import create_engine, create_sessionmaker
from shared.messaging import PeriodicJob, run_worker, worker_main


def jobs(
    settings: InventorySettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> list[PeriodicJob]:
    """What the worker runs on a timer."""
    return [
        PeriodicJob(
            "reservation sweep",
            interval=settings.sweeper_interval_seconds,
            run=partial(sweep, sessionmaker=sessionmaker, settings=settings),
        ),
        PeriodicJob(
            "media sweep",
            interval=settings.media_sweep_interval_seconds,
            run=partial(sweep_media, sessionmaker=sessionmaker, settings=settings),
        ),
    ]


async def run(
    settings: InventorySettings,
    *,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run until ``stop`` is set (or a signal arrives)."""
    engine = create_engine(settings, role="worker")
    # Reservations, commits, releases and expiries change what catalog reads show: each
    # transaction's commit invalidates the products it touched (inventory.products.staleness).
    cache = CatalogCache(settings)
    staleness.attach(engine, cache.invalidate)
    sessionmaker = create_sessionmaker(engine)
    try:
        await run_worker(
            settings,
            consumers=[reservations_consumer(settings), stock_alerts_consumer()],
            outbox=outbox,
            jobs=jobs(settings, sessionmaker),
            stop=stop,
            engine=engine,
            install_signal_handlers=install_signal_handlers,
        )
    finally:
        staleness.detach(engine)
        await cache.close()
        await engine.dispose()


def main() -> None:
    worker_main(get_settings(), run)


if __name__ == "__main__":
    main()
