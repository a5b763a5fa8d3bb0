"""Reconciling: a payment left pending is settled from the provider's memory, once, with its
event; never by charging, never while a request is at it, never twice."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from payments.config import PaymentsSettings
from payments.payment import charges
from payments.payment.models import PaymentStatus
from payments.provider import Charge, PaymentProvider, ProviderUnavailableError, Refund
from payments.reconciler import ReconcileResult, reconcile_once
from shared.contracts import Money
from shared.contracts.orders import PaymentRequested
from shared.messaging import Envelope

from .conftest import (
    CrashAfterProviderAnswered,
    Payments,
    SimulatedCrash,
    payment_requested,
    wait_for_a_lock_wait,
)


@dataclass
class CrashBeforeCharging:
    """The process "dies" after the attempt was recorded, before the provider was asked."""

    inner: PaymentProvider

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        raise SimulatedCrash("crashed before the provider was asked")

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        return await self.inner.refund(
            idempotency_key=idempotency_key, charge_id=charge_id, amount=amount
        )

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        return await self.inner.find_charge(idempotency_key=idempotency_key)


@dataclass
class GatedLookups:
    """Lookups get their answer, then set ``entered`` and wait for ``release`` before giving
    it; charges go straight through."""

    inner: PaymentProvider
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

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
        answer = await self.inner.find_charge(idempotency_key=idempotency_key)
        self.entered.set()
        await self.release.wait()
        return answer


@dataclass
class FailingLookups(GatedLookups):
    error: Exception = field(default_factory=lambda: ProviderUnavailableError("down"))

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        raise self.error


@dataclass
class SlowLookups(GatedLookups):
    """Lookups that take a moment, so that two reconcilers overlap."""

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        await asyncio.sleep(0.05)
        return await self.inner.find_charge(idempotency_key=idempotency_key)


def due(settings: PaymentsSettings) -> datetime:
    """A moment at which every payment pending now is past the reconciler's age."""
    return datetime.now(UTC) + timedelta(seconds=settings.reconcile_after_seconds + 1)


async def reconcile(
    payments: Payments, *, provider: PaymentProvider | None = None, now: datetime | None = None
) -> ReconcileResult:
    return await reconcile_once(
        sessionmaker=payments.sessionmaker,
        provider=provider or payments.provider,
        settings=payments.settings,
        now=now or due(payments.settings),
    )


async def left_pending_after_charge(
    payments: Payments,
    token: str = "tok_visa",  # noqa: S107  (a public test token, not a secret)
) -> Envelope:
    """A request whose delivery died after the provider answered (and is never redelivered:
    dead-lettered, say): the charge is made, the payment pending, nothing announced."""
    event = payment_requested(token)
    with pytest.raises(SimulatedCrash):
        await payments.deliver(event, provider=CrashAfterProviderAnswered(payments.provider))
    return event


async def left_pending_before_charge(payments: Payments) -> Envelope:
    """A request whose delivery died after the attempt was recorded, before any charge."""
    event = payment_requested("tok_visa")
    with pytest.raises(SimulatedCrash):
        await payments.deliver(event, provider=CrashBeforeCharging(payments.provider))
    return event


def order_of(event: Envelope) -> uuid.UUID:
    return event.payload(PaymentRequested).order_id


async def test_payment_left_pending_after_the_charge_is_settled_succeeded_and_announced_once(
    payments: Payments,
) -> None:
    event = await left_pending_after_charge(payments)
    charges_before = payments.provider.charge_calls

    assert await reconcile(payments) == ReconcileResult(settled=1, left_pending=0)
    assert await reconcile(payments) == ReconcileResult(settled=0, left_pending=0)

    payment = await payments.payment_of(order_of(event))
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.provider_charge_id is not None
    assert payment.provider_charge_id.startswith("ch_")
    assert payments.provider.charge_calls == charges_before  # looked up, never charged
    assert payments.provider.lookup_calls == 1
    assert await payments.charges() == 1
    assert await payments.events() == [
        (
            "payments.payment_succeeded",
            {
                "payment_id": str(payment.id),
                "order_id": str(order_of(event)),
                "amount": {"amount": 1999, "currency": "USD"},
            },
        )
    ]


async def test_payment_left_pending_after_a_decline_is_failed_with_the_decline_reason(
    payments: Payments,
) -> None:
    event = await left_pending_after_charge(payments, "tok_insufficientFunds")

    await reconcile(payments)

    payment = await payments.payment_of(order_of(event))
    assert (payment.status, payment.failure_reason) == (
        PaymentStatus.FAILED,
        "insufficient_funds",
    )
    assert [kind for kind, _ in await payments.events()] == ["payments.payment_failed"]


async def test_payment_left_pending_without_a_charge_is_failed_as_processing_error(
    payments: Payments,
) -> None:
    event = await left_pending_before_charge(payments)

    assert await reconcile(payments) == ReconcileResult(settled=1, left_pending=0)

    payment = await payments.payment_of(order_of(event))
    assert (payment.status, payment.failure_reason) == (PaymentStatus.FAILED, "processing_error")
    assert payment.provider_charge_id is None
    assert await payments.charges() == 0
    assert await payments.events() == [
        (
            "payments.payment_failed",
            {
                "payment_id": str(payment.id),
                "order_id": str(order_of(event)),
                "reason": "processing_error",
            },
        )
    ]


async def test_payment_pending_for_less_than_the_threshold_is_left_alone(
    payments: Payments,
) -> None:
    event = await left_pending_after_charge(payments)

    assert await reconcile(payments, now=datetime.now(UTC)) == ReconcileResult(0, 0)

    assert (await payments.payment_of(order_of(event))).status == PaymentStatus.PENDING
    assert payments.provider.lookup_calls == 0
    assert await payments.events() == []


async def test_a_new_attempt_restarts_the_age_of_a_pending_payment(payments: Payments) -> None:
    # An old pending payment that a request is at again right now is that request's to settle.
    event = await left_pending_before_charge(payments)
    async with payments.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE payments.payments SET updated_at = now() - interval '1 day'")
        )
    with pytest.raises(SimulatedCrash):
        await payments.deliver(event, provider=CrashBeforeCharging(payments.provider))

    assert await reconcile(payments, now=datetime.now(UTC)) == ReconcileResult(0, 0)
    assert (await payments.payment_of(order_of(event))).status == PaymentStatus.PENDING


async def test_two_reconcilers_at_once_settle_each_payment_once(
    payments: Payments,
) -> None:
    events = [await left_pending_after_charge(payments) for _ in range(6)]
    shared = Payments(
        settings=make_settings_like(payments.settings, reconcile_batch_size=2),
        sessionmaker=payments.sessionmaker,
    )
    slow = SlowLookups(payments.provider)

    results = await asyncio.gather(
        reconcile(shared, provider=slow), reconcile(shared, provider=slow)
    )

    assert sum(result.settled for result in results) == 6
    assert payments.provider.lookup_calls == 6  # shared out: no payment was looked up twice
    announced = await payments.events()
    assert sorted(data["order_id"] for _, data in announced) == sorted(
        str(order_of(event)) for event in events
    )
    assert {kind for kind, _ in announced} == {"payments.payment_succeeded"}


async def test_request_arriving_while_the_reconciler_holds_the_payment_waits_and_settles_nothing(
    payments: Payments,
) -> None:
    event = await left_pending_after_charge(payments)
    gated = GatedLookups(payments.provider)
    reconciling = asyncio.create_task(reconcile(payments, provider=gated))
    await gated.entered.wait()  # the batch is locked, the provider being asked

    redelivered = asyncio.create_task(payments.deliver(event))
    await wait_for_a_lock_wait(payments.sessionmaker)  # its attempt waits on the lock
    gated.release.set()

    assert (await reconciling).settled == 1
    assert await redelivered is True  # handled: it found the payment settled
    assert (await payments.payment_of(order_of(event))).status == PaymentStatus.SUCCEEDED
    assert await payments.charges() == 1
    # The reconciler's announcement, then the request's answer: the same outcome again.
    assert [kind for kind, _ in await payments.events()] == ["payments.payment_succeeded"] * 2


async def test_request_arriving_while_the_reconciler_fails_an_uncharged_payment_does_not_charge(
    payments: Payments,
) -> None:
    # The reconciler has found no charge and is about to fail the payment. Had the request
    # read the payment as pending (from its snapshot), it would charge now: money taken, the
    # order cancelled on payment_failed, nothing refunded. It waits on the reconciler's lock,
    # finds the payment failed, and charges nothing.
    event = await left_pending_before_charge(payments)
    gated = GatedLookups(payments.provider)
    reconciling = asyncio.create_task(reconcile(payments, provider=gated))
    await gated.entered.wait()

    redelivered = asyncio.create_task(payments.deliver(event))
    await wait_for_a_lock_wait(payments.sessionmaker)
    gated.release.set()

    assert (await reconciling).settled == 1
    assert await redelivered is True
    payment = await payments.payment_of(order_of(event))
    assert (payment.status, payment.failure_reason) == (PaymentStatus.FAILED, "processing_error")
    assert await payments.charges() == 0
    assert [kind for kind, _ in await payments.events()] == ["payments.payment_failed"] * 2


async def test_reconciler_settling_between_a_requests_answer_and_its_settle_settles_once(
    payments: Payments,
) -> None:
    event = await left_pending_after_charge(payments)

    @dataclass
    class ReconcileOnAnswer(GatedLookups):
        """The provider answers the redelivery, then the reconciler settles the payment
        before the redelivery's transaction does."""

        async def authorize_and_capture(
            self, *, idempotency_key: str, amount: Money, payment_token: str
        ) -> Charge:
            charge = await self.inner.authorize_and_capture(
                idempotency_key=idempotency_key, amount=amount, payment_token=payment_token
            )
            assert (await reconcile(payments)).settled == 1
            return charge

    assert await payments.deliver(event, provider=ReconcileOnAnswer(payments.provider)) is True

    assert (await payments.payment_of(order_of(event))).status == PaymentStatus.SUCCEEDED
    assert await payments.charges() == 1
    # The reconciler's settle announced it; the request, finding it settled, answers with it.
    payment = await payments.payment_of(order_of(event))
    assert {(kind, data["payment_id"]) for kind, data in await payments.events()} == {
        ("payments.payment_succeeded", str(payment.id))
    }
    assert len(await payments.events()) == 2


@pytest.mark.parametrize(
    "error", [ProviderUnavailableError("the provider is down"), RuntimeError("a bug")]
)
async def test_provider_failing_the_lookup_leaves_the_payment_pending_for_the_next_round(
    payments: Payments, error: Exception
) -> None:
    event = await left_pending_after_charge(payments)
    other = await left_pending_after_charge(payments)

    failing = FailingLookups(payments.provider, error=error)
    assert await reconcile(payments, provider=failing) == ReconcileResult(0, 2)

    assert (await payments.payment_of(order_of(event))).status == PaymentStatus.PENDING
    assert await payments.events() == []
    # The next round, with the provider back, settles both.
    assert await reconcile(payments) == ReconcileResult(settled=2, left_pending=0)
    assert (await payments.payment_of(order_of(other))).status == PaymentStatus.SUCCEEDED


async def test_a_pass_goes_past_the_payments_it_leaves_pending(payments: Payments) -> None:
    # Batches of one: the pass asks once about each payment, not again and again about the
    # first one it could not settle.
    for _ in range(3):
        await left_pending_after_charge(payments)
    small = Payments(
        settings=make_settings_like(payments.settings, reconcile_batch_size=1),
        sessionmaker=payments.sessionmaker,
    )
    failing = FailingLookups(payments.provider)

    assert await reconcile(small, provider=failing) == ReconcileResult(0, 3)


async def test_request_refused_before_the_provider_is_reconciled_with_its_refusal(
    payments: Payments, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refusal was decided, then the settle transaction failed every delivery.
    async def settle_fails(**_: object) -> None:
        raise RuntimeError("the settle transaction failed")

    monkeypatch.setattr(charges, "settle_charges", settle_fails)
    event = payment_requested("tok_visa", currency="EUR")
    with pytest.raises(RuntimeError):
        await payments.deliver(event)
    monkeypatch.undo()

    assert (await reconcile(payments)).settled == 1
    payment = await payments.payment_of(order_of(event))
    assert (payment.status, payment.failure_reason) == (
        PaymentStatus.FAILED,
        "unsupported_currency",
    )
    assert payments.provider.lookup_calls == 0  # never went to the provider: not asked now


def make_settings_like(settings: PaymentsSettings, **overrides: object) -> PaymentsSettings:
    return settings.model_copy(update=overrides)
