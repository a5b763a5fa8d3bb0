"""The worker end to end on the real broker: requests in, one charge, one event out."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aio_pika.abc import AbstractQueue
from prometheus_client import REGISTRY

from payments import worker
from payments.config import PaymentsSettings
from payments.handlers import CONSUMER_NAME
from payments.payment.models import PaymentStatus
from payments.provider import FakeProvider, PaymentProvider
from shared.contracts.orders import PaymentRequested, RefundRequested
from shared.contracts.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from shared.messaging import Broker, Envelope, declare_queue, decode, delete_topology
from shared.messaging.broker import OutgoingMessage
from shared.messaging.dlq import count_messages
from shared.messaging.topology import dlq_name, queue_name

from .conftest import (
    CrashAfterProviderAnswered,
    Payments,
    SimulatedCrash,
    payment_requested,
    refund_requested,
)

LISTENER = "payments-test.listener"


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"queue": CONSUMER_NAME}) or 0.0


def _settled() -> float:
    return _metric("messaging_events_consumed_total") + _metric("messaging_events_duplicate_total")


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, what: str, within: float = 30
) -> None:
    """Poll until ``condition`` holds; the bound only stops a hung test, it is not asserted."""
    async with asyncio.timeout(within):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)
    raise AssertionError(what)


class Shop:
    """The broker side of a test: the worker's queue, a listener for payments' events."""

    def __init__(self, settings: PaymentsSettings, broker: Broker, listener: AbstractQueue):
        self.settings = settings
        self.broker = broker
        self.listener = listener

    async def publish(self, event: Envelope, *, times: int = 1) -> None:
        publisher = await self.broker.publisher()
        message = OutgoingMessage(str(event.id), event.type, event.to_bytes())
        await asyncio.gather(*(publisher.publish(message) for _ in range(times)))

    async def dead_letters(self) -> int:
        """Messages waiting in the dead-letter queue of the worker's queue."""
        channel = await self.broker.channel()
        return await count_messages(channel, dlq_name(queue_name(self.settings, CONSUMER_NAME)))

    async def received(self) -> list[Envelope]:
        """Every event on the listener so far (consumed)."""
        events = []
        while (message := await self.listener.get(no_ack=True, fail=False)) is not None:
            events.append(decode(message.body))
        return events


@pytest.fixture
async def shop(settings: PaymentsSettings, payments: Payments) -> AsyncIterator[Shop]:
    broker = Broker(settings)
    await broker.connect()
    channel = await broker.channel()
    # Declared before the worker starts, exactly as the worker declares it, so that what the
    # test publishes has somewhere to go.
    await declare_queue(
        channel,
        settings=settings,
        purpose=CONSUMER_NAME,
        event_types=[PaymentRequested.event_type, RefundRequested.event_type],
    )
    listened = await declare_queue(
        channel,
        settings=settings,
        purpose=LISTENER,
        event_types=[
            PaymentSucceeded.event_type,
            PaymentFailed.event_type,
            PaymentRefunded.event_type,
        ],
    )
    try:
        yield Shop(settings, broker, listened.queue)
    finally:
        await delete_topology(channel, settings=settings, purposes=[CONSUMER_NAME, LISTENER])
        await broker.close()


async def _run_worker(
    settings: PaymentsSettings, payments: Payments, *, provider: PaymentProvider | None = None
) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(
        worker.run(
            settings,
            provider=provider or payments.provider,
            stop=stop,
            install_signal_handlers=False,
        )
    )
    return stop, task


async def test_request_published_five_times_is_charged_once_and_announced_once(
    shop: Shop, payments: Payments
) -> None:
    event = payment_requested("tok_visa")
    order_id = event.payload(PaymentRequested).order_id
    before = _settled()
    stop, task = await _run_worker(shop.settings, payments)
    try:
        await shop.publish(event, times=5)
        await wait_until(lambda: _reached(before + 5), what="five deliveries settled")
        await wait_until(lambda: _unsent_is_zero(payments), what="the outcome published")
    finally:
        stop.set()
        await task

    payment = await payments.payment_of(order_id)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert await payments.charges() == 1
    announced = await shop.received()
    assert [(e.type, e.payload(PaymentSucceeded).order_id) for e in announced] == [
        ("payments.payment_succeeded", order_id)
    ]
    assert announced[0].causation_id == str(event.id)
    assert announced[0].correlation_id == "test-correlation"


async def test_worker_crashing_after_the_charge_gets_the_redelivery_and_charges_once(
    shop: Shop, payments: Payments
) -> None:
    event = payment_requested("tok_mastercard")
    order_id = event.payload(PaymentRequested).order_id
    before = _settled()
    # The first delivery dies after the provider charged (the handler raises, nothing
    # commits, the message goes back to the queue); the redelivery finds a healthy handler.
    crashing = CrashAfterProviderAnswered(payments.provider)
    stop, task = await _run_worker(shop.settings, payments, provider=crashing)
    try:
        await shop.publish(event)
        await wait_until(lambda: _reached(before + 1), what="the redelivery settled")
        await wait_until(lambda: _unsent_is_zero(payments), what="the outcome published")
    finally:
        stop.set()
        await task

    assert crashing.crashed
    assert payments.provider.charge_calls == 2
    assert (await payments.payment_of(order_id)).status == PaymentStatus.SUCCEEDED
    assert await payments.charges() == 1
    assert [e.type for e in await shop.received()] == ["payments.payment_succeeded"]


async def test_refund_requested_through_the_broker_refunds_once(
    shop: Shop, payments: Payments
) -> None:
    paying = payment_requested("tok_visa", amount=700)
    order_id = paying.payload(PaymentRequested).order_id
    before = _settled()
    stop, task = await _run_worker(shop.settings, payments)
    try:
        await shop.publish(paying)
        await wait_until(lambda: _reached(before + 1), what="payment settled")
        refund = refund_requested(await payments.payment_of(order_id))
        await shop.publish(refund, times=3)
        await wait_until(lambda: _reached(before + 4), what="refund deliveries settled")
        await wait_until(lambda: _unsent_is_zero(payments), what="the outcomes published")
    finally:
        stop.set()
        await task

    assert (await payments.payment_of(order_id)).refunded_amount == 700
    assert await payments.refunds() == 1
    assert [e.type for e in await shop.received()] == [
        "payments.payment_succeeded",
        "payments.payment_refunded",
    ]


async def _reached(count: float) -> bool:
    return _settled() >= count


async def _unsent_is_zero(payments: Payments) -> bool:
    return await payments.unsent() == 0 and len(await payments.events()) > 0


async def test_worker_reconciles_a_payment_left_pending_and_stops_the_reconciler_with_it(
    shop: Shop, payments: Payments
) -> None:
    # The request died after the provider charged and is never redelivered (dead-lettered):
    # the worker's reconciler, not a delivery, settles and announces it.
    event = payment_requested("tok_visa")
    order_id = event.payload(PaymentRequested).order_id
    with pytest.raises(SimulatedCrash):
        await payments.deliver(event, provider=CrashAfterProviderAnswered(payments.provider))
    settings = shop.settings.model_copy(
        update={"reconcile_interval_seconds": 0.05, "reconcile_after_seconds": 0.2}
    )
    stop, task = await _run_worker(settings, payments)
    try:
        await wait_until(
            lambda: _status_is(payments, order_id, PaymentStatus.SUCCEEDED),
            what="the payment reconciled",
        )
        await wait_until(lambda: _unsent_is_zero(payments), what="the outcome published")
        assert any(t.get_name() == "payment reconciliation" for t in asyncio.all_tasks())
    finally:
        stop.set()
        await task

    assert not any(t.get_name() == "payment reconciliation" for t in asyncio.all_tasks())
    assert await payments.charges() == 1
    announced = await shop.received()
    assert [(e.type, e.payload(PaymentSucceeded).order_id) for e in announced] == [
        ("payments.payment_succeeded", order_id)
    ]


async def _status_is(payments: Payments, order_id: uuid.UUID, status: PaymentStatus) -> bool:
    return (await payments.payment_of(order_id)).status == status


async def test_refund_through_a_30_second_outage_is_made_once_after_it_never_dead_lettered(
    shop: Shop, payments: Payments
) -> None:
    # Before: the refund's few redeliveries all met the outage within seconds, it landed in
    # the DLQ and the order stayed refund_pending. Now it is owed and retried with backoff
    # (scaled down here: 0.5 s doubling to 4 s) until the provider answers.
    settings = shop.settings.model_copy(
        update={
            "refund_backoff_base_seconds": 0.5,
            "refund_backoff_max_seconds": 4.0,
            "refund_reconcile_interval_seconds": 0.1,
        }
    )
    provider = payments.provider.inner
    assert isinstance(provider, FakeProvider)
    paying = payment_requested("tok_visa", amount=900)
    order_id = paying.payload(PaymentRequested).order_id
    before = _settled()
    stop, task = await _run_worker(settings, payments)
    try:
        await shop.publish(paying)
        await wait_until(lambda: _reached(before + 1), what="payment settled")
        provider.outage(30)
        outage_started = time.monotonic()
        await shop.publish(refund_requested(await payments.payment_of(order_id)))
        # Bounded by the outage, one capped pause and the reconciler's interval, plus slack.
        await wait_until(
            lambda: _status_is(payments, order_id, PaymentStatus.REFUNDED),
            what="the refund made after the outage",
            within=30 + 4 + 6,
        )
        refunded_after = time.monotonic() - outage_started
        await wait_until(lambda: _unsent_is_zero(payments), what="the outcomes published")
        dead_letters = await shop.dead_letters()
    finally:
        stop.set()
        await task

    assert 30 <= refunded_after <= 30 + 4 + 2
    assert await payments.refunds() == 1
    assert (await payments.payment_of(order_id)).refunded_amount == 900
    assert [e.type for e in await shop.received()] == [
        "payments.payment_succeeded",
        "payments.payment_refunded",
    ]
    assert dead_letters == 0
    # Retried across the outage with growing pauses, not in a tight loop: the handler's few
    # quick attempts, then one a pause (0.5, 1, 2, 4, 4, ... each jittered down by up to half)
    # until it answered: some twenty at most, where a tight loop would make hundreds.
    assert payments.provider.refund_calls <= 3 + 20


async def test_repeated_payment_request_announces_the_stored_outcome_again_without_charging(
    shop: Shop, payments: Payments
) -> None:
    # The first payment_succeeded reached the broker but not orders (dead-lettered there):
    # orders asks again with a new event for the same order, and must learn the outcome.
    first = payment_requested("tok_visa", amount=1500)
    order_id = first.payload(PaymentRequested).order_id
    again = payment_requested("tok_visa", amount=1500, order_id=order_id)
    before = _settled()
    stop, task = await _run_worker(shop.settings, payments)
    try:
        await shop.publish(first)
        await wait_until(lambda: _reached(before + 1), what="payment settled")
        await wait_until(lambda: _unsent_is_zero(payments), what="the outcome published")
        lost = await shop.received()
        await shop.publish(again)
        await wait_until(lambda: _reached(before + 2), what="the repeated request handled")
        await wait_until(lambda: _unsent_is_zero(payments), what="the outcome published again")
    finally:
        stop.set()
        await task

    assert [e.type for e in lost] == ["payments.payment_succeeded"]
    repeated = await shop.received()
    assert [e.type for e in repeated] == ["payments.payment_succeeded"]
    assert repeated[0].data == lost[0].data  # same payment id, order and amount
    assert repeated[0].causation_id == str(again.id)
    assert await payments.charges() == 1
    assert payments.provider.charge_calls == 1


async def test_repeated_payment_request_for_a_declined_payment_announces_its_reason_again(
    shop: Shop, payments: Payments
) -> None:
    first = payment_requested("tok_insufficientFunds")
    order_id = first.payload(PaymentRequested).order_id
    before = _settled()
    stop, task = await _run_worker(shop.settings, payments)
    try:
        await shop.publish(first)
        await wait_until(lambda: _reached(before + 1), what="payment settled")
        await shop.publish(payment_requested("tok_visa", order_id=order_id))
        await wait_until(lambda: _reached(before + 2), what="the repeated request handled")
        await wait_until(lambda: _unsent_is_zero(payments), what="the outcomes published")
    finally:
        stop.set()
        await task

    announced = await shop.received()
    assert [(e.type, e.payload(PaymentFailed).reason) for e in announced] == [
        ("payments.payment_failed", "insufficient_funds")
    ] * 2
    assert announced[0].data == announced[1].data
    assert payments.provider.charge_calls == 1
