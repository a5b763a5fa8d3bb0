"""``python -m orders.worker``: the saga and price consumers, the outbox relay, the sweeper.

Built on the shared worker runner; the sweeper runs beside it and stops with it. Any number
of workers may run: consumers share queues, relays and sweepers claim rows with SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from orders.config import OrdersSettings, get_settings
from orders.events import outbox
from orders.handlers import consumers
from orders.order.pruning import prune_idempotency_keys
from orders.order.sweeper import SweepResult, sweep_stuck_orders
from shared.db import create_engine, create_sessionmaker
from shared.messaging import prepare_worker_process, run_worker

logger = logging.getLogger(__name__)


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


async def run_sweeper(
    *, engine: AsyncEngine, settings: OrdersSettings, stop: asyncio.Event
) -> None:
    """Sweep every ``sweeper_interval_seconds`` until ``stop``; a failed pass is retried."""
    while not stop.is_set():
        try:
            await sweep_once(engine=engine, settings=settings)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database may be away; the next pass tries again
            logger.exception("stuck-order sweep failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.sweeper_interval_seconds)


async def run(
    settings: OrdersSettings,
    *,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Run the worker until ``stop`` is set (or SIGTERM/SIGINT)."""
    stop = stop or asyncio.Event()
    engine = create_engine(settings, role="worker")
    sweeper = asyncio.create_task(
        run_sweeper(engine=engine, settings=settings, stop=stop), name="orders sweeper"
    )
    try:
        await run_worker(
            settings,
            consumers=consumers(settings),
            outbox=outbox,
            stop=stop,
            engine=engine,
            install_signal_handlers=install_signal_handlers,
        )
    finally:
        stop.set()  # the runner may have ended on an error: the sweeper ends with it
        await sweeper
        await engine.dispose()


def main() -> None:
    import uvloop

    settings = get_settings()
    prepare_worker_process(settings)
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
