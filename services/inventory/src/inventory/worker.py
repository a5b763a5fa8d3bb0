"""`python -m inventory.worker`: event consumers, outbox relay and expiry sweeper.

SIGTERM or SIGINT stops taking messages, drains those in flight, flushes the relay, lets
the current sweep finish, and exits.
"""

from __future__ import annotations

import asyncio

from inventory.catalog.cache import CatalogCache
from inventory.config import InventorySettings, get_settings
from inventory.events import outbox
from inventory.handlers import reservations_consumer, stock_alerts_consumer
from inventory.media.sweep import run_media_sweeper
from inventory.products import staleness
from inventory.sweeper import run_sweeper
from shared.db import create_engine, create_sessionmaker
from shared.messaging import prepare_worker_process, run_worker


async def run(
    settings: InventorySettings,
    *,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run until ``stop`` is set (or a signal arrives)."""
    stop = stop or asyncio.Event()
    engine = create_engine(settings, role="worker")
    # Reservations, commits, releases and expiries change what catalog reads show: each
    # transaction's commit invalidates the products it touched (inventory.products.staleness).
    cache = CatalogCache(settings)
    staleness.attach(engine, cache.invalidate)
    sessionmaker = create_sessionmaker(engine)
    sweepers = [
        asyncio.create_task(
            run_sweeper(sessionmaker=sessionmaker, settings=settings, stop=stop),
            name="reservation sweeper",
        ),
        asyncio.create_task(
            run_media_sweeper(sessionmaker=sessionmaker, settings=settings, stop=stop),
            name="media sweeper",
        ),
    ]
    try:
        await run_worker(
            settings,
            consumers=[reservations_consumer(settings), stock_alerts_consumer()],
            outbox=outbox,
            stop=stop,
            engine=engine,
            install_signal_handlers=install_signal_handlers,
        )
    finally:
        stop.set()  # also when the worker failed: the sweepers must not outlive it
        await asyncio.gather(*sweepers)
        staleness.detach(engine)
        await cache.close()
        await engine.dispose()


def main() -> None:
    import uvloop

    settings = get_settings()
    prepare_worker_process(settings)
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
