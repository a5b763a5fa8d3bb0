"""Saga reactions run as fixed SQL on the driver connection: the same columns, history and
lock as the ORM path they replaced."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orders.config import OrdersSettings
from orders.handlers import SAGA_REACTIONS, on_saga_events
from orders.order.reactions import Reaction, react_all
from services.orders.tests.conftest import (
    Deliver,
    OutboxReader,
    Place,
    Product,
    User,
    event,
    order_body,
)
from services.orders.tests.saga_helpers import read, reserved, succeeded
from shared.contracts import Money
from shared.contracts.inventory import StockReservationFailed, StockReserved
from shared.contracts.payments import PaymentRefunded

pytestmark = pytest.mark.usefixtures("database")


TOTAL = 2400  # of ``two_line_order``


def reserving(order_id: uuid.UUID) -> Reaction:
    """stock_reserved for the order, decoded as the worker decodes it."""
    return SAGA_REACTIONS[StockReserved.event_type](event(reserved(order_id)))


async def two_line_order(place: Place, product: Product, user: User) -> uuid.UUID:
    first, second = await product(price=700), await product(price=300)
    response = await place(user, order_body((second, 1), (first, 3)))
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


async def columns(engine: AsyncEngine, order_id: uuid.UUID) -> dict[str, object]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT status, payment_requests, sweep_due_at, payment_token, payment_id, "
                    "updated_at FROM orders.orders WHERE id = :id"
                ),
                {"id": order_id},
            )
        ).one()
    return dict(row._mapping)


async def test_reactions_write_the_columns_history_and_events_of_each_transition(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
    settings: OrdersSettings,
) -> None:
    order_id = await two_line_order(place, product, customer)
    before = datetime.now(UTC)
    await deliver(event(reserved(order_id)))
    awaiting = await columns(engine, order_id)
    assert (awaiting["status"], awaiting["payment_requests"]) == ("awaiting_payment", 1)
    assert awaiting["payment_token"] == "tok_visa"
    due = awaiting["sweep_due_at"]
    timeout = timedelta(seconds=settings.awaiting_payment_timeout_seconds)
    assert isinstance(due, datetime)
    assert before + timeout <= due <= datetime.now(UTC) + timeout

    payment_id = uuid.uuid4()
    await deliver(event(succeeded(order_id, payment_id, amount=TOTAL)))
    confirmed = await columns(engine, order_id)
    assert confirmed["status"] == "confirmed"
    assert (confirmed["sweep_due_at"], confirmed["payment_token"]) == (None, None)
    assert confirmed["payment_id"] == payment_id

    response = await client.get(f"/api/v1/orders/{order_id}", headers=customer.headers)
    order = response.json()
    assert [(h["status"], h["reason"]) for h in order["status_history"]] == [
        ("pending", "order_placed"),
        ("awaiting_payment", "stock_reserved"),
        ("confirmed", "payment_succeeded"),
    ]
    assert order["updated_at"] == order["status_history"][-1]["at"]
    events = await outbox_events(order_id)
    [(_, requested), (_, confirmation)] = events[1:]
    assert requested == {
        "order_id": str(order_id),
        "user_id": str(customer.id),
        "amount": {"amount": 2400, "currency": "USD"},
        "payment_token": "tok_visa",
    }
    # The lines in the order they were placed (position), not by sku.
    assert confirmation["items"] == [
        {"sku": line["sku"], "quantity": line["quantity"]} for line in order["items"]
    ]


async def test_two_events_for_one_order_in_one_transaction_apply_in_turn(
    place: Place,
    product: Product,
    customer: User,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Two calls in one transaction: the second's lock reads what the first wrote, uncommitted.
    order_id = await two_line_order(place, product, customer)
    async with sessionmaker() as session, session.begin():
        await on_saga_events(session, [event(reserved(order_id))], settings=settings)
        await on_saga_events(
            session, [event(succeeded(order_id, uuid.uuid4(), amount=TOTAL))], settings=settings
        )
    assert (await columns(engine, order_id))["status"] == "confirmed"
    assert [kind for kind, _ in await outbox_events(order_id)] == [
        "orders.order_created",
        "orders.payment_requested",
        "orders.order_confirmed",
    ]


async def test_a_second_event_waits_on_the_order_lock_and_sees_the_first_ones_status(
    place: Place,
    product: Product,
    customer: User,
    outbox_events: OutboxReader,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    order_id = await two_line_order(place, product, customer)
    async with sessionmaker() as first, first.begin():
        [moved] = await react_all(session=first, settings=settings, reactions=[reserving(order_id)])
        assert moved

        async def second() -> bool:
            async with sessionmaker() as session, session.begin():
                [moved] = await react_all(
                    session=session, settings=settings, reactions=[reserving(order_id)]
                )
                return moved

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # blocked on the row lock the first reaction holds
    # The first committed: the second now finds the order awaiting payment and skips.
    assert await asyncio.wait_for(waiting, timeout=10) is False
    assert [kind for kind, _ in await outbox_events(order_id)] == [
        "orders.order_created",
        "orders.payment_requested",
    ]


async def history(client: httpx.AsyncClient, user: User, order_id: uuid.UUID) -> list[str]:
    return [change["reason"] for change in (await read(client, user, order_id))["status_history"]]


async def test_a_batch_of_mixed_saga_events_applies_each_in_turn(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # One consumer batch, as the saga's batch handler gets it: events of several types for
    # several orders, two of them for one order, one for no order, one the table refuses,
    # one that needs compensating.
    paid, rejected, early, cancelled = [
        await two_line_order(place, product, customer) for _ in range(4)
    ]
    response = await client.post(f"/api/v1/orders/{cancelled}/cancel", headers=customer.headers)
    assert response.status_code == 200, response.text
    payment_id = uuid.uuid4()
    failed = StockReservationFailed(order_id=rejected, reason="out_of_stock", skus=["x"])
    batch = [
        event(reserved(paid)),
        event(failed),
        event(reserved(uuid.uuid4())),  # an order this service never had
        event(succeeded(early, uuid.uuid4(), amount=TOTAL)),  # pending: not awaiting payment yet
        event(succeeded(paid, payment_id, amount=TOTAL)),  # reads what the batch's first event left
        event(reserved(cancelled)),  # the cancellation overtook the reservation
    ]
    async with sessionmaker() as session, session.begin():
        await on_saga_events(session, batch, settings=settings)

    assert (await columns(engine, paid))["payment_id"] == payment_id
    statuses = [(await columns(engine, order))["status"] for order in (paid, rejected, early)]
    assert statuses == ["confirmed", "rejected", "pending"]
    assert await history(client, customer, paid) == [
        "order_placed",
        "stock_reserved",
        "payment_succeeded",
    ]
    assert await history(client, customer, rejected) == ["order_placed", "out_of_stock"]
    assert await history(client, customer, early) == ["order_placed"]
    created, *written = [kind for kind, _ in await outbox_events(paid)]
    # A batch's events are written in one transaction, so they share created_at: among
    # themselves they sort by id, which orders them only to the millisecond.
    assert (created, sorted(written)) == (
        "orders.order_created",
        ["orders.order_confirmed", "orders.payment_requested"],
    )
    assert [kind for kind, _ in await outbox_events(early)] == ["orders.order_created"]
    [*_, (kind, compensation)] = await outbox_events(cancelled)
    assert (kind, compensation["reason"]) == (
        "orders.order_cancelled",
        "cancelled_before_reservation",
    )


async def test_a_refund_after_a_batch_confirmed_the_order_returns_the_stock(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # A refund gives stock back only if the order was ever confirmed, which it reads from
    # the history: the confirmation a batch wrote must be there.
    order_id = await two_line_order(place, product, customer)
    payment_id = uuid.uuid4()
    async with sessionmaker() as session, session.begin():
        await on_saga_events(
            session,
            [event(reserved(order_id)), event(succeeded(order_id, payment_id, amount=TOTAL))],
            settings=settings,
        )
    response = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=customer.headers)
    assert response.json()["status"] == "refund_pending", response.text
    amount = Money(amount=2400, currency="USD")
    refunded = PaymentRefunded(payment_id=payment_id, order_id=order_id, amount=amount)
    async with sessionmaker() as session, session.begin():
        await on_saga_events(session, [event(refunded)], settings=settings)
    assert (await columns(engine, order_id))["status"] == "refunded"
    [*_, (kind, returned)] = await outbox_events(order_id)
    assert (kind, returned["reason"]) == ("orders.order_cancelled", "refunded")
