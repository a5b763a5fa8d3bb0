"""Requests for one order whose provider conversations overlap: a lookup's "no charge" never
fails a payment another request may still be charging, and a repeated request is answered
with the payment's outcome as it is when answered, not as it was when prepared."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from payments.handlers import requests_consumer
from payments.payment.models import PaymentStatus
from payments.provider import Charge, PaymentProvider, ProviderUnavailableError, Refund
from payments.reconciler import reconcile_once
from shared.contracts import Money
from shared.contracts.orders import PaymentRequested
from shared.messaging import PreparedBatchHandler

from .conftest import Payments, payment_requested, refund_requested


@dataclass
class PassThrough:
    """The provider ``inner`` as it is; the test providers below change its charges only."""

    inner: PaymentProvider

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        return await self.inner.authorize_and_capture(
            idempotency_key=idempotency_key, amount=amount, payment_token=payment_token
        )

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        return await self.inner.refund(
            idempotency_key=idempotency_key, charge_id=charge_id, amount=amount
        )

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        return await self.inner.find_charge(idempotency_key=idempotency_key)


@dataclass
class ChargesFail(PassThrough):
    """A provider whose charge calls all fail as unavailable; lookups and refunds work."""

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        raise ProviderUnavailableError("charges are failing")


@dataclass
class HeldCharge(PassThrough):
    """A provider whose charge calls wait for ``release`` before reaching the provider."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    charge_calls: int = 0
    then_fail: bool = False  # once released, fail as unavailable instead of charging

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        self.charge_calls += 1
        self.entered.set()
        await self.release.wait()
        if self.then_fail:
            raise ProviderUnavailableError("charges are failing")
        return await super().authorize_and_capture(
            idempotency_key=idempotency_key, amount=amount, payment_token=payment_token
        )


async def test_no_charge_found_never_fails_a_payment_another_worker_may_still_charge(
    payments: Payments,
) -> None:
    # Two workers, two requests for one order (orders asked again after a backlog). The
    # first worker's charge is slow; the second's calls fail, and its lookup runs before the
    # first charge is made, so it finds none.
    order_id, user_id = uuid.uuid4(), uuid.uuid4()
    first, second = (
        payment_requested("tok_visa", order_id=order_id, user_id=user_id) for _ in range(2)
    )
    slow = HeldCharge(payments.provider)
    charging = asyncio.create_task(payments.deliver(first, provider=slow))
    await asyncio.wait_for(slow.entered.wait(), timeout=10)

    assert await payments.deliver(second, provider=ChargesFail(payments.provider)) is True
    assert (await payments.payment_of(order_id)).status == PaymentStatus.PENDING
    assert await payments.events() == []  # nothing announced: the order keeps waiting

    slow.release.set()
    assert await charging is True
    payment = await payments.payment_of(order_id)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert await payments.charges() == 1
    assert [kind for kind, _ in await payments.events()] == ["payments.payment_succeeded"]


async def test_a_payment_left_pending_so_is_settled_by_the_reconciler(
    payments: Payments,
) -> None:
    # Two overlapping requests whose charge calls all fail: neither may fail the payment,
    # since each overlapped another attempt; the reconciler, once every attempt has ended,
    # does.
    order_id, user_id = uuid.uuid4(), uuid.uuid4()
    first, second = (
        payment_requested("tok_visa", order_id=order_id, user_id=user_id) for _ in range(2)
    )
    slow = HeldCharge(payments.provider, then_fail=True)
    charging = asyncio.create_task(payments.deliver(first, provider=slow))
    await asyncio.wait_for(slow.entered.wait(), timeout=10)
    assert await payments.deliver(second, provider=ChargesFail(payments.provider)) is True
    slow.release.set()
    assert await charging is True
    assert (await payments.payment_of(order_id)).status == PaymentStatus.PENDING
    assert await payments.events() == []

    later = datetime.now(UTC) + timedelta(seconds=payments.settings.reconcile_after_seconds + 1)
    result = await reconcile_once(
        sessionmaker=payments.sessionmaker,
        provider=payments.provider,
        settings=payments.settings,
        now=later,
    )

    assert result.settled == 1
    payment = await payments.payment_of(order_id)
    assert (payment.status, payment.failure_reason) == (PaymentStatus.FAILED, "processing_error")
    assert [kind for kind, _ in await payments.events()] == ["payments.payment_failed"]
    assert await payments.charges() == 0


async def test_a_sole_request_whose_charges_fail_and_found_none_fails_at_once(
    payments: Payments,
) -> None:
    event = payment_requested("tok_visa")
    assert await payments.deliver(event, provider=ChargesFail(payments.provider)) is True
    payment = await payments.payment_of(event.payload(PaymentRequested).order_id)
    assert (payment.status, payment.failure_reason) == (PaymentStatus.FAILED, "processing_error")


async def test_requests_for_one_order_in_one_worker_share_one_provider_conversation(
    payments: Payments,
) -> None:
    order_id, user_id = uuid.uuid4(), uuid.uuid4()
    slow = HeldCharge(payments.provider)
    consumer = requests_consumer(
        settings=payments.settings, sessionmaker=payments.sessionmaker, provider=slow
    )
    handler = consumer.handlers["orders.payment_requested"]
    assert isinstance(handler, PreparedBatchHandler)
    events = [payment_requested("tok_visa", order_id=order_id, user_id=user_id) for _ in range(3)]

    preparing = asyncio.gather(*(handler.prepare(event) for event in events))
    await asyncio.wait_for(slow.entered.wait(), timeout=10)
    await asyncio.sleep(0.05)  # the other two arrive while the first is with the provider
    slow.release.set()
    outcomes = await preparing

    assert slow.charge_calls == 1
    assert len({outcome.charge_id for outcome in outcomes}) == 1
    assert await payments.charges() == 1


async def test_a_repeated_request_is_answered_with_a_refund_made_since_it_was_prepared(
    payments: Payments,
) -> None:
    order_id = uuid.uuid4()
    assert await payments.deliver(payment_requested("tok_visa", order_id=order_id))
    paid = await payments.payment_of(order_id)
    consumer = requests_consumer(
        settings=payments.settings, sessionmaker=payments.sessionmaker, provider=payments.provider
    )
    handler = consumer.handlers["orders.payment_requested"]
    assert isinstance(handler, PreparedBatchHandler)
    repeated = payment_requested("tok_visa", order_id=order_id)
    prepared = await handler.prepare(repeated)  # finds the payment succeeded

    assert await payments.deliver(refund_requested(paid))
    async with payments.sessionmaker() as session, session.begin():
        await handler.apply(session, [(repeated, prepared)])

    assert [kind for kind, _ in await payments.events()] == [
        "payments.payment_succeeded",
        "payments.payment_refunded",
        "payments.payment_refunded",  # the repeated request's answer, never a success
    ]
