"""``python -m payments.worker``: the request consumer, the outbox relay and the reconcilers
(of payments left pending, and of refunds owed).

SIGTERM or SIGINT stops taking messages, drains those in flight, flushes the relay, lets the
current reconciliations finish, and exits.
"""

from __future__ import annotations

import asyncio

from payments.config import PaymentsSettings, get_settings
from payments.events import OUTBOX
from payments.handlers import requests_consumer
from payments.provider import FakeProvider, PaymentProvider
from payments.provider.metered import MeteredProvider
from payments.reconciler import run_reconciler, run_refund_reconciler
from shared.db import create_engine, create_sessionmaker
from shared.messaging import prepare_worker_process, run_worker


async def run(
    settings: PaymentsSettings,
    *,
    provider: PaymentProvider | None = None,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
) -> None:
    """Consume and relay until ``stop`` is set or a signal arrives; then drain and return."""
    stop = stop or asyncio.Event()
    # The engine is ours, not the runner's: the handlers and the reconciler need its
    # sessionmaker for the attempt records and the fake provider's memory.
    engine = create_engine(settings, role="worker")
    sessionmaker = create_sessionmaker(engine)
    provider = MeteredProvider(
        provider or FakeProvider.from_settings(settings, sessionmaker=sessionmaker)
    )
    consumer = requests_consumer(settings=settings, sessionmaker=sessionmaker, provider=provider)
    reconcilers = [
        asyncio.create_task(
            reconcile(sessionmaker=sessionmaker, provider=provider, settings=settings, stop=stop),
            name=name,
        )
        for reconcile, name in [
            (run_reconciler, "payments reconciler"),
            (run_refund_reconciler, "payments refund reconciler"),
        ]
    ]
    try:
        await run_worker(
            settings,
            consumers=[consumer],
            outbox=OUTBOX,
            engine=engine,
            stop=stop,
            install_signal_handlers=install_signal_handlers,
        )
    finally:
        stop.set()  # also when the worker failed: the reconcilers must not outlive it
        await asyncio.gather(*reconcilers)
        await engine.dispose()


def main() -> None:
    import uvloop

    settings = get_settings()
    prepare_worker_process(settings)
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
