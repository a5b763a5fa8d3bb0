"""Event handlers: what payments does when orders asks it to charge or refund."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments.config import PaymentsSettings
from payments.events import ProcessedEvent
from payments.payment import charges, refunds
from payments.payment.attempts import AttemptRecorder
from payments.provider import PaymentProvider, RetryPolicy
from shared.contracts.orders import PaymentRequested, RefundRequested
from shared.messaging import Consumer, Envelope, PreparedBatchHandler, PreparedHandler

CONSUMER_NAME = "payments.requests"


def requests_consumer(
    *,
    settings: PaymentsSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
) -> Consumer:
    """The one consuming purpose of payments: the charge and refund requests of orders.

    One queue for both keeps the number of provider calls in flight bounded by a single
    prefetch.
    """
    retry = RetryPolicy.from_settings(settings)
    backoff = refunds.RefundBackoff.from_settings(settings)
    attempts = AttemptRecorder(sessionmaker)
    conversations = charges.ProviderConversations()

    # Both requests call the provider: prepared handlers, so no transaction and no pooled
    # connection waits on it. The consumer's transaction only writes the outcome; a run of
    # charges in one statement.
    async def prepare_charge(event: Envelope) -> charges.ChargeOutcome:
        return await charges.prepare_charge(
            attempts=attempts,
            conversations=conversations,
            provider=provider,
            retry=retry,
            store_currency=settings.store_currency,
            event=event,
        )

    async def settle_charges(
        session: AsyncSession, prepared: Sequence[tuple[Envelope, charges.ChargeOutcome]]
    ) -> None:
        await charges.settle_charges(session=session, prepared=prepared)

    # A refund the provider cannot make now is recorded as owed and acknowledged: the refund
    # reconciler retries it over minutes, where redeliveries would dead-letter it in seconds.
    async def prepare_refund(event: Envelope) -> refunds.RefundOutcome:
        return await refunds.prepare_refund(
            sessionmaker=sessionmaker, provider=provider, retry=retry, event=event
        )

    async def record_refund(
        session: AsyncSession, event: Envelope, outcome: refunds.RefundOutcome
    ) -> None:
        await refunds.record_refund(session=session, event=event, outcome=outcome, backoff=backoff)

    return Consumer(
        name=CONSUMER_NAME,
        handlers={
            PaymentRequested.event_type: PreparedBatchHandler(prepare_charge, settle_charges),
            RefundRequested.event_type: PreparedHandler(prepare_refund, record_refund),
        },
        inbox=ProcessedEvent,
        # Every request's provider call starts when it arrives, side by side with the others
        # in flight (up to the prefetch); the prepared ones that queue up while a batch's
        # transaction runs form the next batch. One batch at a time: the transactions only
        # write outcomes (no provider call waits inside one), and one runner settles its
        # deliveries in order, so a batch is acknowledged with one `multiple` ack, where
        # several runners would ack each message, a settle command of the quorum queue apiece
        # (RabbitMQ's CPU and this worker's both drop; bench/CHANGES.md).
        max_batch=settings.broker_prefetch,
        concurrency=1,
    )
