"""Refunds the provider cannot make when asked: owed, acknowledged, retried with growing
pauses by the refund reconciler, made once when the provider is back, announced once."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy import select, text

from payments.payment import refunds
from payments.payment.models import OwedRefund, Payment, PaymentStatus, RefundStatus
from payments.provider import Charge, FakeProvider, PaymentProvider, Refund
from payments.reconciler import RefundReconcileResult, reconcile_refunds_once
from shared.contracts import Money

from .conftest import CountingProvider, Payments, payment_requested, refund_requested

# No jitter: the pause before the n-th retry is exactly base * 2**(n-1), capped.
STEADY = refunds.RefundBackoff(base_seconds=5.0, max_seconds=60.0, random=lambda: 1.0)


def fake(payments: Payments) -> FakeProvider:
    inner = payments.provider.inner
    assert isinstance(inner, FakeProvider)
    return inner


async def paid(payments: Payments, amount: int = 4200) -> Payment:
    event = payment_requested("tok_visa", amount=amount)
    await payments.deliver(event)
    return await payments.payment_of(event.data.model_dump()["order_id"])


async def owed_record(payments: Payments, payment: Payment) -> OwedRefund:
    async with payments.sessionmaker() as session:
        owed = await session.scalar(select(OwedRefund).where(OwedRefund.payment_id == payment.id))
    assert owed is not None
    return owed


async def reconcile(
    payments: Payments, *, at: datetime, provider: PaymentProvider | None = None
) -> RefundReconcileResult:
    return await reconcile_refunds_once(
        sessionmaker=payments.sessionmaker,
        provider=provider or payments.provider,
        settings=payments.settings,
        backoff=STEADY,
        now=at,
    )


async def owed_during_an_outage(payments: Payments) -> tuple[Payment, datetime]:
    """A paid order whose refund request met an unreachable provider (still unreachable
    after this); when it was asked."""
    fake(payments).outage(0)
    payment = await paid(payments)
    fake(payments).outage(3600)
    asked_at = datetime.now(UTC)
    assert await payments.deliver(refund_requested(payment)) is True
    return payment, asked_at


def refunded_events(events: list[tuple[str, dict[str, object]]]) -> list[dict[str, object]]:
    return [data for kind, data in events if kind == "payments.payment_refunded"]


async def test_refund_the_provider_cannot_make_is_owed_and_the_request_acknowledged(
    payments: Payments,
) -> None:
    payment, asked_at = await owed_during_an_outage(payments)

    # Acknowledged (handled, not raised for a redelivery that would dead-letter it) ...
    assert (await payments.payment_of(payment.order_id)).status == PaymentStatus.SUCCEEDED
    assert refunded_events(await payments.events()) == []
    # ... and kept as owed, first retried after about the base pause (jittered down by half).
    owed = await owed_record(payments, payment)
    assert (owed.status, owed.attempts) == (RefundStatus.OWED, 1)
    assert owed.last_error is not None
    assert "outage" in owed.last_error
    base = payments.settings.refund_backoff_base_seconds
    assert owed.next_attempt_at is not None
    delay = (owed.next_attempt_at - asked_at).total_seconds()
    assert base / 2 - 1 <= delay <= base + 1


async def test_owed_refund_is_made_once_the_provider_recovers_and_announced_once(
    payments: Payments,
) -> None:
    payment, asked_at = await owed_during_an_outage(payments)
    owed = await owed_record(payments, payment)
    assert owed.next_attempt_at is not None

    # Not due yet: the reconciler leaves it alone, even with the provider back.
    fake(payments).outage(0)
    calls_before = payments.provider.refund_calls
    assert await reconcile(payments, at=asked_at) == RefundReconcileResult(0, 0, 0)
    assert payments.provider.refund_calls == calls_before

    due = owed.next_attempt_at + timedelta(seconds=1)
    assert await reconcile(payments, at=due) == RefundReconcileResult(1, 0, 0)
    assert await reconcile(payments, at=due + timedelta(hours=1)) == RefundReconcileResult(0, 0, 0)

    refunded = await payments.payment_of(payment.order_id)
    assert (refunded.status, refunded.refunded_amount) == (PaymentStatus.REFUNDED, 4200)
    assert await payments.refunds() == 1
    assert refunded_events(await payments.events()) == [
        {
            "payment_id": str(payment.id),
            "order_id": str(payment.order_id),
            "amount": {"amount": 4200, "currency": "USD"},
        }
    ]
    assert (await owed_record(payments, payment)).status == RefundStatus.REFUNDED


async def test_the_announcement_of_an_owed_refund_follows_the_request_that_asked(
    payments: Payments,
) -> None:
    payment = await paid(payments)
    fake(payments).outage(3600)
    request = refund_requested(payment)
    await payments.deliver(request)
    fake(payments).outage(0)

    await reconcile(payments, at=datetime.now(UTC) + timedelta(hours=1))

    async with payments.sessionmaker() as session:
        body = await session.scalar(
            text("SELECT body FROM payments.outbox WHERE event_type = 'payments.payment_refunded'")
        )
    assert body["causation_id"] == str(request.id)
    assert body["correlation_id"] == request.correlation_id


async def test_reconciler_backs_off_exponentially_while_the_provider_stays_down(
    payments: Payments,
) -> None:
    payment, _ = await owed_during_an_outage(payments)
    calls_before = payments.provider.refund_calls

    pauses = []
    for _ in range(5):
        owed = await owed_record(payments, payment)
        assert owed.next_attempt_at is not None
        at = owed.next_attempt_at
        assert await reconcile(payments, at=at) == RefundReconcileResult(0, 1, 0)
        following = (await owed_record(payments, payment)).next_attempt_at
        assert following is not None
        pauses.append((following - at).total_seconds())

    # One call per due retry, the pauses doubling from the second retry up to the cap.
    assert payments.provider.refund_calls - calls_before == 5
    assert pauses == [10.0, 20.0, 40.0, 60.0, 60.0]
    owed = await owed_record(payments, payment)
    assert (owed.status, owed.attempts) == (RefundStatus.OWED, 6)
    assert refunded_events(await payments.events()) == []


@dataclass
class SlowRefunds:
    """Refunds that take a moment, so that two reconcilers overlap."""

    inner: PaymentProvider

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        raise AssertionError("a refund reconciler never charges")

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        raise AssertionError("a refund reconciler never looks up charges")

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        await asyncio.sleep(0.05)
        return await self.inner.refund(
            idempotency_key=idempotency_key, charge_id=charge_id, amount=amount
        )


async def test_two_reconcilers_at_once_make_each_owed_refund_once(payments: Payments) -> None:
    owed = [(await owed_during_an_outage(payments))[0] for _ in range(6)]
    fake(payments).outage(0)
    counting = CountingProvider(fake(payments))
    slow = SlowRefunds(counting)
    small = Payments(
        settings=payments.settings.model_copy(update={"reconcile_batch_size": 2}),
        sessionmaker=payments.sessionmaker,
    )
    later = datetime.now(UTC) + timedelta(hours=1)

    results = await asyncio.gather(
        reconcile(small, at=later, provider=slow), reconcile(small, at=later, provider=slow)
    )

    assert sum(result.refunded for result in results) == 6
    assert counting.refund_calls == 6  # shared out: no refund was asked for twice
    assert await payments.refunds() == 6
    assert sorted(str(data["payment_id"]) for data in refunded_events(await payments.events())) == (
        sorted(str(payment.id) for payment in owed)
    )


async def test_request_repeated_while_a_refund_is_owed_is_left_to_the_reconciler(
    payments: Payments,
) -> None:
    # Orders asks again every few minutes while a refund is owed: no provider call, the
    # reconciler's schedule kept, and the refund announced once, when the reconciler makes it.
    payment, _ = await owed_during_an_outage(payments)
    owed_before = await owed_record(payments, payment)
    fake(payments).outage(0)
    calls_before = payments.provider.refund_calls

    assert await payments.deliver(refund_requested(payment)) is True

    assert payments.provider.refund_calls == calls_before
    assert (await payments.payment_of(payment.order_id)).status == PaymentStatus.SUCCEEDED
    owed = await owed_record(payments, payment)
    assert (owed.status, owed.attempts, owed.next_attempt_at) == (
        RefundStatus.OWED,
        owed_before.attempts,
        owed_before.next_attempt_at,
    )
    assert refunded_events(await payments.events()) == []

    later = datetime.now(UTC) + timedelta(hours=1)
    assert await reconcile(payments, at=later) == RefundReconcileResult(1, 0, 0)
    assert (await payments.payment_of(payment.order_id)).status == PaymentStatus.REFUNDED
    assert await payments.refunds() == 1
    assert len(refunded_events(await payments.events())) == 1


async def test_refund_made_elsewhere_meanwhile_closes_the_owed_record_without_a_second_event(
    payments: Payments,
) -> None:
    # The payment was refunded (and announced) by a request while the refund was owed, its
    # owed record left open: the reconciler finds the payment refunded and only closes it.
    payment, _ = await owed_during_an_outage(payments)
    async with payments.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE payments.payments SET status = 'refunded' WHERE id = :id"),
            {"id": payment.id},
        )
    calls_before = payments.provider.refund_calls

    later = datetime.now(UTC) + timedelta(hours=1)
    assert await reconcile(payments, at=later) == RefundReconcileResult(0, 0, 0)

    assert payments.provider.refund_calls == calls_before
    assert (await owed_record(payments, payment)).status == RefundStatus.REFUNDED
    assert refunded_events(await payments.events()) == []


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_refund_the_provider_refuses_ends_refused_recorded_and_counted_not_dead_lettered(
    payments: Payments,
) -> None:
    payment = await paid(payments)
    # A charge the provider does not know: it refuses the refund for good.
    async with payments.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE payments.payments SET provider_charge_id = 'ch_unknown' WHERE id = :id"),
            {"id": payment.id},
        )
    refused_before = _sample(
        "payments_refund_attempts_total", {"source": "request", "outcome": "refused"}
    )

    assert await payments.deliver(refund_requested(payment)) is True  # acknowledged

    owed = await owed_record(payments, payment)
    assert (owed.status, owed.next_attempt_at) == (RefundStatus.REFUSED, None)
    assert owed.last_error == "no captured charge with this id"
    assert (await payments.payment_of(payment.order_id)).status == PaymentStatus.SUCCEEDED
    assert refunded_events(await payments.events()) == []
    assert (
        _sample("payments_refund_attempts_total", {"source": "request", "outcome": "refused"})
        == refused_before + 1
    )
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await reconcile(payments, at=later) == RefundReconcileResult(0, 0, 0)
    backlog = await refunds.measure_refund_backlog(sessionmaker=payments.sessionmaker)
    assert (backlog.owed, backlog.refused) == (0, 1)
    assert _sample("payments_refunds_refused") == 1


async def test_backlog_metrics_show_the_refunds_owed_and_the_age_of_the_oldest(
    payments: Payments,
) -> None:
    await owed_during_an_outage(payments)
    await owed_during_an_outage(payments)

    backlog = await refunds.measure_refund_backlog(
        sessionmaker=payments.sessionmaker, now=datetime.now(UTC) + timedelta(seconds=90)
    )

    assert (backlog.owed, backlog.refused) == (2, 0)
    assert _sample("payments_refunds_owed") == 2
    assert 89 <= _sample("payments_refund_oldest_owed_age_seconds") <= 100


async def test_refund_of_an_unknown_payment_is_skipped_and_owes_nothing(
    payments: Payments,
) -> None:
    ghost = Payment(id=uuid.uuid4(), order_id=uuid.uuid4(), amount=100, currency="USD")

    assert await payments.deliver(refund_requested(ghost)) is True

    async with payments.sessionmaker() as session:
        assert (await session.scalars(select(OwedRefund))).all() == []


async def test_owed_refund_the_provider_then_refuses_ends_refused_and_is_not_retried(
    payments: Payments,
) -> None:
    payment, _ = await owed_during_an_outage(payments)
    async with payments.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE payments.payments SET provider_charge_id = 'ch_unknown' WHERE id = :id"),
            {"id": payment.id},
        )
    fake(payments).outage(0)
    later = datetime.now(UTC) + timedelta(hours=1)

    assert await reconcile(payments, at=later) == RefundReconcileResult(0, 0, 1)
    assert await reconcile(payments, at=later + timedelta(days=1)) == RefundReconcileResult(0, 0, 0)

    owed = await owed_record(payments, payment)
    assert (owed.status, owed.attempts, owed.next_attempt_at) == (RefundStatus.REFUSED, 2, None)
    assert owed.last_error == "no captured charge with this id"
    assert refunded_events(await payments.events()) == []
