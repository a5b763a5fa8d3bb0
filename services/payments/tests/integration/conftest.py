"""A harness that hands events to the payments handlers exactly as the consumer does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments.config import PaymentsSettings
from payments.events import OutboxEvent, ProcessedEvent
from payments.handlers import requests_consumer
from payments.payment.models import Payment
from payments.provider import Charge, FakeProvider, PaymentProvider, Refund
from payments.provider.models import FakeProviderCharge, FakeProviderRefund
from shared.contracts import Money
from shared.contracts.orders import PaymentRequested, RefundRequested
from shared.messaging import Envelope, decode
from shared.messaging.inbox import claim_event, inbox_table


class SimulatedCrash(RuntimeError):
    """Stands for the process dying at the point it is raised."""


@dataclass
class CountingProvider:
    """The fake provider, with a count of the calls it received (retries included)."""

    inner: PaymentProvider
    charge_calls: int = 0
    refund_calls: int = 0

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        self.charge_calls += 1
        return await self.inner.authorize_and_capture(
            idempotency_key=idempotency_key, amount=amount, payment_token=payment_token
        )

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        self.refund_calls += 1
        return await self.inner.refund(
            idempotency_key=idempotency_key, charge_id=charge_id, amount=amount
        )


@dataclass
class CrashAfterProviderAnswered:
    """The provider does its work, then the process "dies" before the answer is committed."""

    inner: PaymentProvider

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        await self.inner.authorize_and_capture(
            idempotency_key=idempotency_key, amount=amount, payment_token=payment_token
        )
        raise SimulatedCrash("crashed after the provider charged")

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        await self.inner.refund(idempotency_key=idempotency_key, charge_id=charge_id, amount=amount)
        raise SimulatedCrash("crashed after the provider refunded")


@dataclass
class Payments:
    settings: PaymentsSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    provider: CountingProvider = field(init=False)

    def __post_init__(self) -> None:
        self.provider = CountingProvider(
            FakeProvider.from_settings(self.settings, sessionmaker=self.sessionmaker)
        )

    async def deliver(self, event: Envelope, *, provider: PaymentProvider | None = None) -> bool:
        """Handle one delivery as ``RunningConsumer`` does: inbox key and effect in one
        transaction. False for a duplicate; raises (rolling back) when the handler does."""
        consumer = requests_consumer(
            settings=self.settings,
            sessionmaker=self.sessionmaker,
            provider=provider or self.provider,
        )
        received = decode(event.to_bytes())  # as it arrives off the wire
        handler = consumer.handlers[received.type]
        async with self.sessionmaker() as session, session.begin():
            claimed = await claim_event(
                session,
                table=inbox_table(ProcessedEvent),
                event_id=received.id,
                consumer=consumer.name,
                event_type=received.type,
            )
            if not claimed:
                return False
            await handler(session, received)
        return True

    async def charges(self) -> int:
        """Charges the provider made (or declined): what a customer would see on a statement."""
        return await self._count(FakeProviderCharge)

    async def refunds(self) -> int:
        return await self._count(FakeProviderRefund)

    async def payment_count(self) -> int:
        return await self._count(Payment)

    async def _count(self, model: type[Any]) -> int:
        async with self.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    async def payment_of(self, order_id: uuid.UUID) -> Payment:
        async with self.sessionmaker() as session:
            payment = await session.scalar(select(Payment).where(Payment.order_id == order_id))
        assert payment is not None
        return payment

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        """The outbox, oldest first: (type, data) of every event emitted."""
        async with self.sessionmaker() as session:
            rows = await session.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at))
            return [(row.event_type, row.body["data"]) for row in rows]


@pytest.fixture
def payments(
    settings: PaymentsSettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> Payments:
    return Payments(settings=settings, sessionmaker=sessionmaker)


def payment_requested(
    token: str = "tok_visa",  # noqa: S107  (a public test token, not a secret)
    *,
    amount: int = 1999,
    currency: str = "USD",
    order_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
) -> Envelope:
    return Envelope.new(
        PaymentRequested(
            order_id=order_id or uuid.uuid4(),
            user_id=user_id or uuid.uuid4(),
            amount=Money(amount=amount, currency=currency),
            payment_token=token,
        ),
        correlation_id="test-correlation",
    )


def refund_requested(payment: Payment, *, amount: int | None = None) -> Envelope:
    return Envelope.new(
        RefundRequested(
            order_id=payment.order_id,
            payment_id=payment.id,
            amount=Money(
                amount=payment.amount if amount is None else amount, currency=payment.currency
            ),
        )
    )
