"""Refunds: the full captured amount, once, however often it is asked for."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from payments.payment.models import Payment, PaymentStatus

from .conftest import (
    CrashAfterProviderAnswered,
    Payments,
    SimulatedCrash,
    payment_requested,
    refund_requested,
)


async def _paid(payments: Payments, card: str = "tok_visa", amount: int = 4200) -> Payment:
    event = payment_requested(card, amount=amount)
    await payments.deliver(event)
    return await payments.payment_of(event.data.model_dump()["order_id"])


async def test_refund_returns_the_full_captured_amount_and_is_emitted(payments: Payments) -> None:
    paid = await _paid(payments, amount=4200)

    assert await payments.deliver(refund_requested(paid)) is True

    payment = await payments.payment_of(paid.order_id)
    assert payment.status == PaymentStatus.REFUNDED
    assert payment.refunded_amount == 4200
    assert await payments.refunds() == 1
    assert (await payments.events())[-1] == (
        "payments.payment_refunded",
        {
            "payment_id": str(paid.id),
            "order_id": str(paid.order_id),
            "amount": {"amount": 4200, "currency": "USD"},
        },
    )


async def test_same_refund_request_delivered_five_times_concurrently_refunds_once(
    payments: Payments,
) -> None:
    paid = await _paid(payments)
    event = refund_requested(paid)

    handled = await asyncio.gather(*(payments.deliver(event) for _ in range(5)))

    assert sorted(handled) == [False, False, False, False, True]
    assert await payments.refunds() == 1
    assert [t for t, _ in await payments.events()].count("payments.payment_refunded") == 1


async def test_five_distinct_refund_requests_concurrently_refund_once_and_each_is_answered(
    payments: Payments,
) -> None:
    paid = await _paid(payments)

    await asyncio.gather(*(payments.deliver(refund_requested(paid)) for _ in range(5)))

    assert await payments.refunds() == 1
    assert (await payments.payment_of(paid.order_id)).refunded_amount == paid.amount
    # One refund, and every request answered with it (orders ignores all but the first):
    # a request that found the refund made, or recorded by another first, announces it again.
    refunded = [data for t, data in await payments.events() if t == "payments.payment_refunded"]
    assert refunded == 5 * [
        {
            "payment_id": str(paid.id),
            "order_id": str(paid.order_id),
            "amount": {"amount": paid.amount, "currency": "USD"},
        }
    ]


async def causes_of_refunds(payments: Payments) -> list[str]:
    """The causation id of every payment_refunded in the outbox, oldest first."""
    async with payments.sessionmaker() as session:
        rows = await session.scalars(
            text(
                "SELECT body->>'causation_id' FROM payments.outbox "
                "WHERE event_type = 'payments.payment_refunded' ORDER BY created_at, id"
            )
        )
        return list(rows)


async def test_refund_requested_again_after_the_refund_announces_it_again_without_refunding(
    payments: Payments,
) -> None:
    # Orders asks again when its payment_refunded was lost (dead-lettered on the way).
    paid = await _paid(payments, amount=4200)
    first = refund_requested(paid)
    await payments.deliver(first)
    calls_after_refund = payments.provider.refund_calls

    again = refund_requested(paid)
    assert await payments.deliver(again) is True

    assert payments.provider.refund_calls == calls_after_refund  # the provider is not asked
    assert await payments.refunds() == 1
    payment = await payments.payment_of(paid.order_id)
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.REFUNDED, 4200)
    refunded = (
        "payments.payment_refunded",
        {
            "payment_id": str(paid.id),
            "order_id": str(paid.order_id),
            "amount": {"amount": 4200, "currency": "USD"},
        },
    )
    assert (await payments.events())[-2:] == [refunded, refunded]
    # Each announcement answers its own request.
    assert await causes_of_refunds(payments) == [str(first.id), str(again.id)]
    # A redelivery of the same request is absorbed by the inbox: no third announcement.
    assert await payments.deliver(again) is False
    assert len(await causes_of_refunds(payments)) == 2


async def test_refund_asking_for_another_amount_still_returns_the_captured_amount(
    payments: Payments,
) -> None:
    paid = await _paid(payments, amount=5000)

    await payments.deliver(refund_requested(paid, amount=100))

    assert (await payments.payment_of(paid.order_id)).refunded_amount == 5000


async def test_crash_after_provider_refunded_and_before_commit_still_refunds_once(
    payments: Payments,
) -> None:
    paid = await _paid(payments)
    event = refund_requested(paid)

    with pytest.raises(SimulatedCrash):
        await payments.deliver(event, provider=CrashAfterProviderAnswered(payments.provider))
    assert (await payments.payment_of(paid.order_id)).status == PaymentStatus.SUCCEEDED

    await payments.deliver(event)

    assert (await payments.payment_of(paid.order_id)).status == PaymentStatus.REFUNDED
    assert await payments.refunds() == 1
    assert [t for t, _ in await payments.events()].count("payments.payment_refunded") == 1


async def test_refund_of_a_failed_payment_is_skipped(payments: Payments) -> None:
    failed = await _paid(payments, card="tok_chargeDeclined")

    assert await payments.deliver(refund_requested(failed)) is True

    payment = await payments.payment_of(failed.order_id)
    assert (payment.status, payment.refunded_amount) == (PaymentStatus.FAILED, 0)
    assert payments.provider.refund_calls == 0
    assert [t for t, _ in await payments.events()] == ["payments.payment_failed"]


async def test_refund_naming_another_orders_payment_is_skipped(payments: Payments) -> None:
    paid = await _paid(payments)
    mismatched = Payment(
        id=paid.id, order_id=uuid.uuid4(), amount=paid.amount, currency=paid.currency
    )

    await payments.deliver(refund_requested(mismatched))

    assert (await payments.payment_of(paid.order_id)).status == PaymentStatus.SUCCEEDED
    assert payments.provider.refund_calls == 0


async def test_payment_requested_again_after_its_refund_announces_the_refund_not_a_success(
    payments: Payments,
) -> None:
    paid = await _paid(payments, amount=4200)
    await payments.deliver(refund_requested(paid))

    await payments.deliver(payment_requested("tok_visa", amount=4200, order_id=paid.order_id))

    assert payments.provider.charge_calls == 1
    refunded = (
        "payments.payment_refunded",
        {
            "payment_id": str(paid.id),
            "order_id": str(paid.order_id),
            "amount": {"amount": 4200, "currency": "USD"},
        },
    )
    assert (await payments.events())[-2:] == [refunded, refunded]
