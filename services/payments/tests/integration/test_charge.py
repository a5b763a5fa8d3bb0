"""Charging: every test token's outcome, exactly one charge per order, crash recovery."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from payments.payment import repository
from payments.payment.attempts import AttemptRecorder
from payments.payment.models import Payment, PaymentStatus
from payments.provider import FakeProvider, ProviderUnavailableError
from payments.provider.models import FakeProviderCharge
from shared.contracts import Money
from shared.contracts.orders import PaymentRequested
from shared.messaging import Envelope

from .conftest import (
    CountingProvider,
    CrashAfterProviderAnswered,
    Payments,
    SimulatedCrash,
    payment_requested,
    wait_for_a_lock_wait,
)


@pytest.mark.parametrize("token", ["tok_visa", "tok_mastercard"])
async def test_good_card_is_charged_and_success_is_emitted(payments: Payments, token: str) -> None:
    event = payment_requested(token, amount=2500)
    order_id = order_of(event)

    assert await payments.deliver(event) is True

    payment = await payments.payment_of(order_id)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.failure_reason is None
    assert (payment.amount, payment.currency, payment.refunded_amount) == (2500, "USD", 0)
    assert payment.provider_charge_id is not None
    assert await payments.charges() == 1
    assert await payments.events() == [
        (
            "payments.payment_succeeded",
            {
                "payment_id": str(payment.id),
                "order_id": str(order_id),
                "amount": {"amount": 2500, "currency": "USD"},
            },
        )
    ]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_chargeDeclined", "card_declined"),
        ("tok_insufficientFunds", "insufficient_funds"),
        ("tok_unknown", "invalid_payment_method"),
        ("", "invalid_payment_method"),
    ],
)
async def test_declined_card_fails_with_its_reason(
    payments: Payments, token: str, reason: str
) -> None:
    event = payment_requested(token)
    order_id = order_of(event)

    await payments.deliver(event)

    payment = await payments.payment_of(order_id)
    assert (payment.status, payment.failure_reason) == (PaymentStatus.FAILED, reason)
    assert payments.provider.charge_calls == 1  # a decline is final: never retried
    assert await payments.events() == [
        (
            "payments.payment_failed",
            {"payment_id": str(payment.id), "order_id": str(order_id), "reason": reason},
        )
    ]


async def test_processing_error_is_retried_with_backoff_then_fails_as_processing_error(
    payments: Payments,
) -> None:
    event = payment_requested("tok_processingError")
    order_id = order_of(event)

    await payments.deliver(event)

    payment = await payments.payment_of(order_id)
    assert (payment.status, payment.failure_reason) == (PaymentStatus.FAILED, "processing_error")
    assert payments.provider.charge_calls == payments.settings.provider_max_attempts == 3
    assert await payments.charges() == 0
    assert [event_type for event_type, _ in await payments.events()] == ["payments.payment_failed"]


@pytest.mark.parametrize(
    ("amount", "currency", "reason"),
    [
        (0, "USD", "invalid_amount"),
        (-5, "USD", "invalid_amount"),
        (1999, "EUR", "unsupported_currency"),
    ],
)
async def test_request_that_cannot_be_charged_fails_without_asking_the_provider(
    payments: Payments, amount: int, currency: str, reason: str
) -> None:
    event = payment_requested("tok_visa", amount=amount, currency=currency)
    order_id = order_of(event)

    await payments.deliver(event)

    payment = await payments.payment_of(order_id)
    assert (payment.status, payment.failure_reason) == (PaymentStatus.FAILED, reason)
    assert payments.provider.charge_calls == 0
    assert [event_type for event_type, _ in await payments.events()] == ["payments.payment_failed"]


async def test_same_request_delivered_five_times_concurrently_charges_once(
    payments: Payments,
) -> None:
    event = payment_requested("tok_visa")

    handled = await asyncio.gather(*(payments.deliver(event) for _ in range(5)))

    assert sorted(handled) == [False, False, False, False, True]
    assert await payments.charges() == 1
    # A delivery asks the provider before its transaction (no connection waits on the
    # provider) unless it finds the payment settled already, always with the order's key:
    # the provider answers every ask with the one charge.
    assert 1 <= payments.provider.charge_calls <= 5
    assert await payments.payment_count() == 1
    assert [event_type for event_type, _ in await payments.events()] == [
        "payments.payment_succeeded"
    ]


async def test_five_distinct_requests_for_one_order_concurrently_charge_once(
    payments: Payments,
) -> None:
    # Not the same event redelivered: five events (other ids) for the same order, which the
    # inbox cannot deduplicate; the unique order and the provider's key must.
    order_id, user_id = uuid.uuid4(), uuid.uuid4()
    events = [payment_requested("tok_visa", order_id=order_id, user_id=user_id) for _ in range(5)]

    handled = await asyncio.gather(*(payments.deliver(event) for event in events))

    assert handled == [True] * 5
    assert await payments.charges() == 1
    assert await payments.payment_count() == 1
    payment = await payments.payment_of(order_id)
    assert payment.status == PaymentStatus.SUCCEEDED
    # Every request is answered, each with the one payment's outcome.
    assert (
        await payments.events()
        == [
            (
                "payments.payment_succeeded",
                {
                    "payment_id": str(payment.id),
                    "order_id": str(order_id),
                    "amount": {"amount": 1999, "currency": "USD"},
                },
            )
        ]
        * 5
    )


async def test_request_repeated_after_settlement_charges_nothing_and_repeats_the_outcome(
    payments: Payments,
) -> None:
    order_id = uuid.uuid4()
    await payments.deliver(payment_requested("tok_chargeDeclined", order_id=order_id))
    # A later request for the same order (another event id) finds the payment settled.
    await payments.deliver(payment_requested("tok_visa", order_id=order_id))

    payment = await payments.payment_of(order_id)
    assert (payment.status, payment.failure_reason) == (PaymentStatus.FAILED, "card_declined")
    assert payments.provider.charge_calls == 1
    failed = (
        "payments.payment_failed",
        {"payment_id": str(payment.id), "order_id": str(order_id), "reason": "card_declined"},
    )
    assert await payments.events() == [failed, failed]


async def test_crash_after_provider_charged_and_before_commit_still_charges_once(
    payments: Payments,
) -> None:
    event = payment_requested("tok_visa")
    order_id = order_of(event)

    with pytest.raises(SimulatedCrash):
        await payments.deliver(event, provider=CrashAfterProviderAnswered(payments.provider))

    # What the crash leaves: the provider charged, the attempt recorded, nothing settled,
    # no event, and no inbox key (so the broker redelivers the request).
    attempt = await payments.payment_of(order_id)
    assert attempt.status == PaymentStatus.PENDING
    assert await payments.charges() == 1
    assert await payments.events() == []

    assert await payments.deliver(event) is True  # the redelivery, after "restart"

    payment = await payments.payment_of(order_id)
    assert payment.id == attempt.id
    assert payment.status == PaymentStatus.SUCCEEDED
    assert await payments.charges() == 1
    assert payments.provider.charge_calls == 2  # asked twice, same key, one charge
    assert [event_type for event_type, _ in await payments.events()] == [
        "payments.payment_succeeded"
    ]


async def test_answers_lost_by_the_provider_are_retried_under_the_same_key(
    payments: Payments,
) -> None:
    # Every charge call fails: the first and third before charging, the second after (the
    # answer lost on the way back); the lookup that follows gets through. The draws: "fail?"
    # then "before processing?" per charge call, "fail?" for the lookup.
    draws = iter([0.0, 0.1, 0.0, 0.9, 0.0, 0.1, 0.9])
    flaky = CountingProvider(
        FakeProvider(
            sessionmaker=payments.sessionmaker,
            failure_rate=0.5,
            random_source=lambda: next(draws),
        )
    )
    event = payment_requested("tok_visa")
    order_id = order_of(event)

    await payments.deliver(event, provider=flaky)

    # Charged on a lost answer, never again, and not failed: the lookup found the charge.
    payment = await payments.payment_of(order_id)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert flaky.charge_calls == 3
    assert await payments.charges() == 1
    assert [event_type for event_type, _ in await payments.events()] == [
        "payments.payment_succeeded"
    ]


async def test_a_provider_that_cannot_say_whether_it_charged_leaves_the_payment_pending(
    payments: Payments,
) -> None:
    # Every call fails, the lookup too: the payment must not fail (it may have been charged);
    # the request is returned for a redelivery, which settles it once the provider answers.
    flaky = CountingProvider(
        FakeProvider(
            sessionmaker=payments.sessionmaker, failure_rate=1.0, random_source=lambda: 0.1
        )
    )
    event = payment_requested("tok_visa")
    order_id = order_of(event)

    with pytest.raises(ProviderUnavailableError):
        await payments.deliver(event, provider=flaky)
    assert (await payments.payment_of(order_id)).status == PaymentStatus.PENDING
    assert await payments.events() == []

    assert await payments.deliver(event) is True  # the redelivery, the provider healthy
    assert (await payments.payment_of(order_id)).status == PaymentStatus.SUCCEEDED
    assert await payments.charges() == 1


class CountingConnection:
    """An asyncpg connection that counts the statements sent through ``fetch``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fetches = 0

    async def fetch(self, query: str, *args: object) -> Any:
        self.fetches += 1
        return await self.inner.fetch(query, *args)


async def test_attempt_waiting_on_a_concurrent_insert_of_the_order_returns_that_payment(
    payments: Payments, engine: AsyncEngine
) -> None:
    # Another request's insert of the same order is in flight: ours waits on it and then
    # conflicts. The attempt must come back as that payment, in the one statement (the
    # conflict's update returns the committed row, not the older snapshot), and none be added.
    order_id, first_id = uuid.uuid4(), uuid.uuid4()
    async with payments.sessionmaker() as first:
        await first.execute(
            insert(Payment).values(
                id=first_id,
                order_id=order_id,
                user_id=uuid.uuid4(),
                amount=1999,
                currency="USD",
                status=PaymentStatus.PENDING.value,
            )
        )
        async with engine.connect() as connection:
            db = CountingConnection((await connection.get_raw_connection()).driver_connection)
            recording = asyncio.create_task(
                repository.record_attempts(
                    db,
                    [
                        repository.Attempt(
                            payment_id=uuid.uuid4(),
                            order_id=order_id,
                            user_id=uuid.uuid4(),
                            amount=1999,
                            currency="USD",
                        )
                    ],
                )
            )
            await wait_for_a_lock_wait(payments.sessionmaker)
            await first.commit()
            [attempt] = (await recording).values()

    assert (attempt.id, attempt.order_id, attempt.status) == (first_id, order_id, "pending")
    assert db.fetches == 1
    assert await payments.payment_count() == 1


async def test_charge_waiting_on_a_concurrent_charge_with_its_key_returns_that_charge(
    payments: Payments,
) -> None:
    # The provider's side of the same race: the first answer under a key wins, and a request
    # that waited on it gets that answer, not an error and not a second charge.
    key = str(uuid.uuid4())
    provider = FakeProvider(sessionmaker=payments.sessionmaker)
    async with payments.sessionmaker() as first:
        await first.execute(
            insert(FakeProviderCharge).values(
                idempotency_key=key,
                charge_id="ch_first",
                amount=1999,
                currency="USD",
                outcome="succeeded",
            )
        )
        charging = asyncio.create_task(
            provider.authorize_and_capture(
                idempotency_key=key,
                amount=Money(amount=1999, currency="USD"),
                payment_token="tok_visa",
            )
        )
        await wait_for_a_lock_wait(payments.sessionmaker)
        await first.commit()
        charge = await charging

    assert (charge.charge_id, charge.decline) == ("ch_first", None)
    assert await payments.charges() == 1


def order_of(event: Envelope) -> uuid.UUID:
    return event.payload(PaymentRequested).order_id


async def test_no_log_line_carries_the_payment_token(
    payments: Payments, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = ["tok_visa", "tok_chargeDeclined", "tok_processingError", "tok_secret4242"]
    for token in tokens:
        await payments.deliver(payment_requested(token))

    assert caplog.records, "the handlers log what they decide"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not any(token in logged for token in tokens)


class CountingCalls:
    """A repository or provider function, called through, with a count of its calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return await self.inner(*args, **kwargs)


async def test_requests_arriving_together_share_statements_and_each_order_is_charged_once(
    payments: Payments, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five orders: two good cards, one declined, one asked twice under two event ids (a
    # re-request), one already settled by an earlier request. All arrive at once.
    settled_before = payment_requested("tok_visa")
    assert await payments.deliver(settled_before) is True
    again_order = uuid.uuid4()
    events = [
        payment_requested("tok_visa", amount=1000),
        payment_requested("tok_mastercard", amount=2000),
        payment_requested("tok_chargeDeclined"),
        payment_requested("tok_visa", order_id=again_order),
        payment_requested("tok_visa", order_id=again_order),
        payment_requested("tok_visa", order_id=order_of(settled_before)),
    ]
    attempts = CountingCalls(repository.record_attempts)
    monkeypatch.setattr(repository, "record_attempts", attempts)
    settles = CountingCalls(repository.settle_pending)
    monkeypatch.setattr(repository, "settle_pending", settles)

    await payments.deliver_together(events)

    # One statement recorded every attempt and one settled every pending payment.
    assert (attempts.calls, settles.calls) == (1, 1)
    outcomes = {
        order_of(event): (await payments.payment_of(order_of(event))).status for event in events
    }
    assert outcomes == {
        order_of(events[0]): PaymentStatus.SUCCEEDED,
        order_of(events[1]): PaymentStatus.SUCCEEDED,
        order_of(events[2]): PaymentStatus.FAILED,
        again_order: PaymentStatus.SUCCEEDED,
        order_of(settled_before): PaymentStatus.SUCCEEDED,
    }
    assert await payments.payment_count() == 5
    assert await payments.charges() == 5  # the declined one is on record as declined
    # One outcome event per request: the re-request and the settled order's request are
    # answered with the outcome their payment has (settled_before's first answer included).
    emitted = await payments.events()
    assert sorted(payload["order_id"] for _, payload in emitted) == sorted(
        [str(order_of(settled_before)), *(str(order_of(event)) for event in events)]
    )
    assert sorted(event_type for event_type, _ in emitted) == [
        "payments.payment_failed",
        *["payments.payment_succeeded"] * 6,
    ]


async def test_charges_asked_together_under_one_key_get_the_one_charge(
    payments: Payments,
) -> None:
    provider = FakeProvider(sessionmaker=payments.sessionmaker)
    good = Money(amount=1999, currency="USD")
    keys = ["order-a", "order-a", "order-b"]

    charges = await asyncio.gather(
        *(
            provider.authorize_and_capture(
                idempotency_key=key, amount=good, payment_token="tok_visa"
            )
            for key in keys
        )
    )

    assert charges[0] == charges[1]
    assert charges[0].charge_id != charges[2].charge_id
    assert await payments.charges() == 2
    # Asked again later, a key answers with its first charge.
    again = await provider.authorize_and_capture(
        idempotency_key="order-b", amount=good, payment_token="tok_visa"
    )
    assert again == charges[2]


async def test_an_attempt_the_database_refuses_fails_alone_not_those_recorded_with_it(
    payments: Payments,
) -> None:
    # An amount beyond bigint fails the shared insert for every row in it; the recorder
    # then records each attempt alone, so the sound requests arriving with it still go on.
    recorder = AttemptRecorder(payments.sessionmaker)
    sound = [payment_requested("tok_visa") for _ in range(2)]
    refused = payment_requested("tok_visa", amount=2**63)

    results = await asyncio.gather(
        *(recorder.record(event.payload(PaymentRequested)) for event in [*sound, refused]),
        return_exceptions=True,
    )

    assert [type(result) for result in results[:2]] == [Payment, Payment]
    assert isinstance(results[2], Exception)
    assert {(await payments.payment_of(order_of(event))).status for event in sound} == {
        PaymentStatus.PENDING
    }
    assert await payments.payment_count() == 2
