"""Fixtures of the payments integration tests: settings, the run's database, signed tokens,
and a harness that hands events to the handlers exactly as the consumer does."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jws
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from payments.config import PaymentsSettings
from payments.events import OutboxEvent, ProcessedEvent
from payments.handlers import requests_consumer
from payments.payment.models import Payment
from payments.provider import Charge, FakeProvider, PaymentProvider, Refund
from payments.provider.models import FakeProviderCharge, FakeProviderRefund
from shared.auth import key_id
from shared.contracts import Money
from shared.contracts.orders import PaymentRequested, RefundRequested
from shared.db import create_engine, create_sessionmaker
from shared.messaging import Envelope, PreparedBatchHandler, PreparedHandler, decode
from shared.messaging.inbox import claim_events, inbox_table

_namespaces = itertools.count(1)


@dataclass(frozen=True)
class SigningKey:
    """The test run's stand-in for the gateway's signing key."""

    private_pem: str
    public_pem: str

    def token(self, user_id: uuid.UUID, *roles: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "commerce-gateway",
            "aud": "commerce-api",
            "sub": str(user_id),
            "roles": list(roles),
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        signed: str = jws.sign(
            orjson.dumps(claims),
            self.private_pem,
            algorithm="RS256",
            headers={"kid": key_id(self.public_pem)},
        )
        return signed

    def headers(self, user_id: uuid.UUID, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, *roles)}"}


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return SigningKey(private_pem=private_pem, public_pem=public_pem)


def make_settings(signing_key: SigningKey, **overrides: object) -> PaymentsSettings:
    """Settings on the run's database with a namespace of their own and quick retries."""
    namespace = f"{os.environ['COMMERCE_BROKER_NAMESPACE']}.payments{next(_namespaces)}"
    values: dict[str, object] = {
        "broker_namespace": namespace,
        "jwt_public_keys": signing_key.public_pem,
        "provider_max_attempts": 3,
        "provider_backoff_initial_seconds": 0.001,
        "provider_backoff_max_seconds": 0.002,
        "broker_delivery_limit": 3,
        "outbox_poll_interval_seconds": 0.2,
        "worker_shutdown_timeout_seconds": 10.0,
    }
    values.update(overrides)
    return PaymentsSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(signing_key: SigningKey) -> PaymentsSettings:
    return make_settings(signing_key)


@pytest.fixture(scope="session")
async def engine(database: str, signing_key: SigningKey) -> AsyncIterator[AsyncEngine]:
    """The service's own engine (role ``payments``) on the run's migrated database."""
    engine = create_engine(make_settings(signing_key))
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A sessionmaker on an emptied payments schema: every test starts from nothing."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "TRUNCATE payments.payments, payments.fake_provider_charges, "
                "payments.fake_provider_refunds, payments.refunds, payments.outbox, "
                "payments.processed_events"
            )
        )
    return create_sessionmaker(engine)


class SimulatedCrash(RuntimeError):
    """Stands for the process dying at the point it is raised."""


@dataclass
class CountingProvider:
    """The fake provider, with a count of the calls it received (retries included)."""

    inner: PaymentProvider
    charge_calls: int = 0
    refund_calls: int = 0
    lookup_calls: int = 0

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

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        self.lookup_calls += 1
        return await self.inner.find_charge(idempotency_key=idempotency_key)


@dataclass
class CrashAfterProviderAnswered:
    """The provider does its work, then the process "dies" before the answer is committed;
    once: after that it behaves (the restarted process)."""

    inner: PaymentProvider
    crashed: bool = False

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        charge = await self.inner.authorize_and_capture(
            idempotency_key=idempotency_key, amount=amount, payment_token=payment_token
        )
        self._crash_once("crashed after the provider charged")
        return charge

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        refund = await self.inner.refund(
            idempotency_key=idempotency_key, charge_id=charge_id, amount=amount
        )
        self._crash_once("crashed after the provider refunded")
        return refund

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        return await self.inner.find_charge(idempotency_key=idempotency_key)

    def _crash_once(self, what: str) -> None:
        if not self.crashed:
            self.crashed = True
            raise SimulatedCrash(what)


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
        """Handle one delivery as ``RunningConsumer`` does: the handler's preparation first,
        outside any transaction, then the inbox key and the effect in one transaction.
        False for a duplicate; raises (rolling back) when the handler does."""
        consumer = requests_consumer(
            settings=self.settings,
            sessionmaker=self.sessionmaker,
            provider=provider or self.provider,
        )
        received = decode(event.to_bytes())  # as it arrives off the wire
        handler = consumer.handlers[received.type]
        # Both requests call the provider; charges are applied a run at a time.
        assert isinstance(handler, PreparedHandler | PreparedBatchHandler)
        prepared = await handler.prepare(received)
        async with self.sessionmaker() as session, session.begin():
            claimed = await claim_events(
                session,
                table=inbox_table(ProcessedEvent),
                events=[(received.id, received.type)],
                consumer=consumer.name,
            )
            if not claimed:
                return False
            if isinstance(handler, PreparedBatchHandler):
                await handler.apply(session, [(received, prepared)])
            else:
                await handler.apply(session, received, prepared)
        return True

    async def deliver_together(self, events: list[Envelope]) -> None:
        """Charge requests arriving together, as ``RunningConsumer`` takes a batch: every
        preparation side by side, then the new ones applied as one run in one transaction."""
        consumer = requests_consumer(
            settings=self.settings, sessionmaker=self.sessionmaker, provider=self.provider
        )
        received = [decode(event.to_bytes()) for event in events]
        handler = consumer.handlers[PaymentRequested.event_type]
        assert isinstance(handler, PreparedBatchHandler)
        prepared = await asyncio.gather(*(handler.prepare(event) for event in received))
        async with self.sessionmaker() as session, session.begin():
            claimed = await claim_events(
                session,
                table=inbox_table(ProcessedEvent),
                events=[(event.id, event.type) for event in received],
                consumer=consumer.name,
            )
            run = []
            for event, outcome in zip(received, prepared, strict=True):
                if event.id in claimed:
                    claimed.discard(event.id)
                    run.append((event, outcome))
            await handler.apply(session, run)

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

    async def unsent(self) -> int:
        """Outbox rows the relay has not yet seen confirmed by the broker."""
        async with self.sessionmaker() as session:
            statement = select(func.count()).where(OutboxEvent.sent_at.is_(None))
            return int(await session.scalar(statement) or 0)

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


async def wait_for_a_lock_wait(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Until some statement of the database waits on a lock (the one the test set up)."""
    statement = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(10):
        while True:
            async with sessionmaker() as session:
                if await session.scalar(statement):
                    return
            await asyncio.sleep(0.01)
