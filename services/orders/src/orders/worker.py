"""``python -m orders.worker``: the saga and price consumers, the outbox relay, the sweep.

Built on the shared worker runner, which runs the sweep as a periodic job. Any number of
workers may run: consumers share queues, relays and sweeps claim rows with SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.ext.asyncio import AsyncEngine

from orders.config import OrdersSettings, get_settings
from orders.events import outbox
from orders.handlers import consumers
from orders.order.pruning import prune_idempotency_keys
from orders.order.sweeper import SweepResult, sweep_stuck_orders
from shared.db import create_engine, create_sessionmaker
from shared.messaging import PeriodicJob, run_worker, worker_main


async def sweep_once(*, engine: AsyncEngine, settings: OrdersSettings) -> SweepResult:
    """One pass: resolve stuck orders batch by batch, then forget expired idempotency keys."""
    sessionmaker = create_sessionmaker(engine)
    requested = cancelled = refunds = 0
    while True:
        async with sessionmaker() as session:
            result = await sweep_stuck_orders(session=session, settings=settings)
        requested += result.payment_requested_again
        cancelled += result.cancelled
        refunds += result.refund_requested_again
        if result.resolved < settings.sweeper_batch_size:
            break
    async with sessionmaker() as session:
        await prune_idempotency_keys(session=session, settings=settings)
    return SweepResult(
        payment_requested_again=requested, cancelled=cancelled, refund_requested_again=refunds
    )


def jobs(settings: OrdersSettings, engine: AsyncEngine) -> list[PeriodicJob]:
    """What the worker runs on a timer."""
    return [
        PeriodicJob(
            "stuck-order sweep",
            interval=settings.sweeper_interval_seconds,
            run=partial(sweep_once, engine=engine, settings=settings),
        )
    ]


async def run(
    settings: OrdersSettings,
    *,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run the worker until ``stop`` is set (or SIGTERM/SIGINT)."""
    engine = create_engine(settings, role="worker")
    try:
        await run_worker(
            settings,
            consumers=consumers(settings),
            outbox=outbox,
            jobs=jobs(settings, engine),
            stop=stop,
            engine=engine,
            install_signal_handlers=install_signal_handlers,
        )
    finally:
        await engine.dispose()


def main() -> None:
    worker_main(get_settings(), run)


if __name__ == "__main__":
    main()
