"""``python -m payments.worker``: the request consumer, the outbox relay and the reconcilers
(of payments left pending, and of refunds owed).

The reconcilers are periodic jobs the shared worker runner runs. SIGTERM or SIGINT stops
taking messages, drains those in flight, flushes the relay, lets the current
reconciliations finish, and exits.
"""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments.config import PaymentsSettings, get_settings
from payments.events import outbox
from payments.handlers import requests_consumer
from payments.payment.refunds import RefundBackoff
from payments.provider import FakeProvider, PaymentProvider
from payments.provider.metered import MeteredProvider
from payments.reconciler import reconcile, reconcile_refunds
from shared.db import create_engine, create_sessionmaker
from shared.messaging import PeriodicJob, run_worker, worker_main


def jobs(
    settings: PaymentsSettings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
) -> list[PeriodicJob]:
    """What the worker runs on a timer."""
    return [
        PeriodicJob(
            "payment reconciliation",
            interval=settings.reconcile_interval_seconds,
            run=partial(reconcile, sessionmaker=sessionmaker, provider=provider, settings=settings),
        ),
        PeriodicJob(
            "refund reconciliation",
            interval=settings.refund_reconcile_interval_seconds,
            run=partial(
                reconcile_refunds,
                sessionmaker=sessionmaker,
                provider=provider,
                settings=settings,
                backoff=RefundBackoff.from_settings(settings),
            ),
        ),
    ]


async def run(
    settings: PaymentsSettings,
    *,
    provider: PaymentProvider | None = None,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Consume and relay until ``stop`` is set or a signal arrives; then drain and return."""
    # The engine is ours, not the runner's: the handlers and the reconciler need its
    # sessionmaker for the attempt records and the fake provider's memory.
    engine = create_engine(settings, role="worker")
    sessionmaker = create_sessionmaker(engine)
    provider = MeteredProvider(
        provider or FakeProvider.from_settings(settings, sessionmaker=sessionmaker)
    )
    consumer = requests_consumer(settings=settings, sessionmaker=sessionmaker, provider=provider)
    try:
        await run_worker(
            settings,
            consumers=[consumer],
            outbox=outbox,
            jobs=jobs(settings, sessionmaker=sessionmaker, provider=provider),
            engine=engine,
            stop=stop,
            install_signal_handlers=install_signal_handlers,
        )
    finally:
        await engine.dispose()


def main() -> None:
    worker_main(get_settings(), run)


if __name__ == "__main__":
    main()
