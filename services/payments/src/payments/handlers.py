"""Event handlers: what payments does when orders asks it to charge or refund."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments.config import PaymentsSettings
from payments.events import ProcessedEvent
from payments.payment import service
from payments.provider import PaymentProvider, RetryPolicy
from shared.contracts.orders import PaymentRequested, RefundRequested
from shared.messaging import Consumer, Envelope

CONSUMER_NAME = "payments.requests"


def requests_consumer(
    *,
    settings: PaymentsSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
) -> Consumer:
    """The one consuming purpose of payments: the charge and refund requests of orders.

    One queue for both keeps the number of payments in flight (and so of connections held
    during provider calls) bounded by a single prefetch.
    """
    retry = RetryPolicy.from_settings(settings)

    async def on_payment_requested(session: AsyncSession, event: Envelope) -> None:
        await service.charge_for_order(
            session=session,
            sessionmaker=sessionmaker,
            provider=provider,
            retry=retry,
            store_currency=settings.store_currency,
            event=event,
        )

    async def on_refund_requested(session: AsyncSession, event: Envelope) -> None:
        await service.refund_payment(session=session, provider=provider, retry=retry, event=event)

    return Consumer(
        name=CONSUMER_NAME,
        handlers={
            PaymentRequested.event_type: on_payment_requested,
            RefundRequested.event_type: on_refund_requested,
        },
        inbox=ProcessedEvent,
        # A charge calls the provider: one event per transaction (a failed batch would call
        # it again), and as many in flight as the prefetch lets in, since each mostly waits.
        max_batch=1,
        concurrency=settings.broker_prefetch,
    )
