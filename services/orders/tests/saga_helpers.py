"""Steps the saga's integration tests share: place an order, deliver its events, sweep."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orders.config import OrdersSettings
from orders.order.sweeper import SweepResult, sweep_stuck_orders
from services.orders.tests.conftest import (
    Deliver,
    OutboxReader,
    Place,
    Product,
    User,
    event,
    order_body,
)
from shared.contracts import Money
from shared.contracts.inventory import ReservedLine, StockReserved
from shared.contracts.payments import PaymentSucceeded

PRICE = 1500


async def new_order(place: Place, product: Product, user: User, quantity: int = 2) -> uuid.UUID:
    sku = await product(price=PRICE)
    response = await place(user, order_body((sku, quantity)))
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


async def read(client: httpx.AsyncClient, user: User, order_id: uuid.UUID) -> dict[str, Any]:
    response = await client.get(f"/api/v1/orders/{order_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def reserved(order_id: uuid.UUID) -> StockReserved:
    return StockReserved(order_id=order_id, items=[ReservedLine(sku="x", quantity=2)])


def succeeded(
    order_id: uuid.UUID, payment_id: uuid.UUID | None = None, *, amount: int = 2 * PRICE
) -> PaymentSucceeded:
    return PaymentSucceeded(
        payment_id=payment_id or uuid.uuid4(),
        order_id=order_id,
        amount=Money(amount=amount, currency="USD"),
    )


async def paid_order(place: Place, product: Product, user: User, deliver: Deliver) -> uuid.UUID:
    order_id = await new_order(place, product, user)
    await deliver(event(reserved(order_id)))
    await deliver(event(succeeded(order_id)))
    return order_id


async def types(outbox_events: OutboxReader, order_id: uuid.UUID) -> list[str]:
    return [event_type for event_type, _ in await outbox_events(order_id)]


async def column(engine: AsyncEngine, order_id: uuid.UUID, name: str) -> Any:
    """One column of the order's row, as stored (``name`` is the test's own constant)."""
    async with engine.connect() as connection:
        return await connection.scalar(
            text(f"SELECT {name} FROM orders.orders WHERE id = :id"),  # noqa: S608
            {"id": order_id},
        )


async def expire(engine: AsyncEngine, order_id: uuid.UUID) -> None:
    """Make the order due for the sweeper now."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE orders.orders SET sweep_due_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": order_id},
        )


async def sweep(
    sessionmaker: async_sessionmaker[AsyncSession], settings: OrdersSettings
) -> SweepResult:
    """One batch of the sweeper, as the worker runs it."""
    async with sessionmaker() as session:
        return await sweep_stuck_orders(session=session, settings=settings)
