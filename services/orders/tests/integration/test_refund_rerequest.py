"""An order left ``refund_pending`` (its ``payment_refunded`` lost on the way) asks for its
refund again, through the sweeper, for as long as it takes; a repeated ``payment_refunded``
changes nothing and returns no stock twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orders.config import OrdersSettings
from orders.order.sweeper import SweepResult
from services.orders.tests.conftest import Deliver, OutboxReader, Place, Product, User, event
from services.orders.tests.saga_helpers import (
    PRICE,
    column,
    expire,
    new_order,
    read,
    reserved,
    succeeded,
    sweep,
    types,
)
from shared.contracts import Money
from shared.contracts.payments import PaymentRefunded, PaymentSucceeded

pytestmark = pytest.mark.usefixtures("database")

REFUND = "orders.refund_requested"


async def refund_pending(
    client: httpx.AsyncClient, place: Place, product: Product, user: User, deliver: Deliver
) -> tuple[uuid.UUID, uuid.UUID]:
    """A paid order the customer cancelled: waiting for its refund. (order id, payment id)"""
    order_id = await new_order(place, product, user)
    await deliver(event(reserved(order_id)))
    payment_id = uuid.uuid4()
    await deliver(event(succeeded(order_id, payment_id)))
    response = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=user.headers)
    assert response.json()["status"] == "refund_pending", response.text
    return order_id, payment_id


async def refund_requests(outbox_events: OutboxReader, order_id: uuid.UUID) -> list[Any]:
    return [data for kind, data in await outbox_events(order_id) if kind == REFUND]


async def test_a_refund_pending_order_is_watched_by_the_sweeper_from_its_move(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    engine: AsyncEngine,
    settings: OrdersSettings,
) -> None:
    before = datetime.now(UTC)
    order_id, _ = await refund_pending(client, place, product, customer, deliver)

    due = await column(engine, order_id, "sweep_due_at")
    timeout = timedelta(seconds=settings.refund_pending_timeout_seconds)
    assert due is not None
    assert before + timeout <= due <= datetime.now(UTC) + timeout


async def test_the_sweeper_asks_again_for_a_stale_refund_and_not_for_a_fresh_one(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    stale, payment_id = await refund_pending(client, place, product, customer, deliver)
    fresh, _ = await refund_pending(client, place, product, customer, deliver)
    before = await read(client, customer, stale)
    await expire(engine, stale)  # its payment_refunded never came

    swept_at = datetime.now(UTC)
    result = await sweep(sessionmaker, settings)

    assert result == SweepResult(payment_requested_again=0, cancelled=0, refund_requested_again=1)
    first, again = await refund_requests(outbox_events, stale)
    assert (
        again
        == first
        == {
            "order_id": str(stale),
            "payment_id": str(payment_id),
            "amount": {"amount": 2 * PRICE, "currency": "USD"},
        }
    )
    assert len(await refund_requests(outbox_events, fresh)) == 1
    # The order does not move: same status, history and representation.
    assert await read(client, customer, stale) == before
    # Looked at again one timeout later, not at the next sweep.
    due = await column(engine, stale, "sweep_due_at")
    timeout = timedelta(seconds=settings.refund_pending_timeout_seconds)
    assert due is not None
    assert swept_at + timeout <= due <= datetime.now(UTC) + timeout
    assert (await sweep(sessionmaker, settings)).refund_requested_again == 0


async def test_a_refund_is_asked_for_again_without_limit_until_it_is_announced(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    order_id, payment_id = await refund_pending(client, place, product, customer, deliver)
    # Well past the payment request attempts: a refund owed is never given up on.
    rounds = settings.payment_request_attempts + 3
    for _ in range(rounds):
        await expire(engine, order_id)
        assert (await sweep(sessionmaker, settings)).refund_requested_again == 1
    assert len(await refund_requests(outbox_events, order_id)) == 1 + rounds
    assert (await read(client, customer, order_id))["status"] == "refund_pending"

    amount = Money(amount=2 * PRICE, currency="USD")
    await deliver(event(PaymentRefunded(payment_id=payment_id, order_id=order_id, amount=amount)))

    assert (await read(client, customer, order_id))["status"] == "refunded"
    assert await column(engine, order_id, "sweep_due_at") is None  # no longer watched
    assert (await sweep(sessionmaker, settings)).refund_requested_again == 0


async def test_a_mismatched_charge_is_asked_for_again_as_charged_not_as_the_total(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    charged = Money(amount=2 * PRICE + 1, currency="USD")
    paid = PaymentSucceeded(payment_id=uuid.uuid4(), order_id=order_id, amount=charged)
    await deliver(event(paid))
    assert (await read(client, customer, order_id))["status"] == "refund_pending"

    await expire(engine, order_id)
    assert (await sweep(sessionmaker, settings)).refund_requested_again == 1

    first, again = await refund_requests(outbox_events, order_id)
    assert again == first
    assert again["amount"] == charged.model_dump()
    # Released once, when the wrong charge was found: asking again releases nothing.
    assert (await types(outbox_events, order_id)).count("orders.order_cancelled") == 1


async def test_concurrent_sweepers_ask_again_for_each_stale_refund_once(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    order_ids = [
        (await refund_pending(client, place, product, customer, deliver))[0] for _ in range(6)
    ]
    for order_id in order_ids:
        await expire(engine, order_id)

    results = await asyncio.gather(*(sweep(sessionmaker, settings) for _ in range(4)))

    assert sum(result.refund_requested_again for result in results) == 6
    for order_id in order_ids:
        assert len(await refund_requests(outbox_events, order_id)) == 2


async def test_a_repeated_payment_refunded_leaves_the_order_refunded_and_returns_no_stock_twice(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
) -> None:
    # Payments answers every refund request: the one orders asked again brings a second
    # payment_refunded (a new event id) after the first.
    order_id, payment_id = await refund_pending(client, place, product, customer, deliver)
    amount = Money(amount=2 * PRICE, currency="USD")
    refunded = PaymentRefunded(payment_id=payment_id, order_id=order_id, amount=amount)
    await deliver(event(refunded))
    after_first = await read(client, customer, order_id)
    assert after_first["status"] == "refunded"

    await deliver(event(refunded))

    assert await read(client, customer, order_id) == after_first
    # The stock went back on hand once: inventory would return it twice on a second one.
    assert await types(outbox_events, order_id) == [
        "orders.order_created",
        "orders.payment_requested",
        "orders.order_confirmed",
        REFUND,
        "orders.order_cancelled",
    ]
