"""The price replica's batch handler: a run of upserts in one statement, newest version wins."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orders.config import OrdersSettings
from orders.handlers import CATALOG_CONSUMER, consumers
from services.orders.tests.conftest import event
from shared.contracts import Money
from shared.contracts.inventory import ProductUpserted
from shared.messaging import BatchHandler, Envelope

pytestmark = pytest.mark.usefixtures("database")


def upsert(sku: str, amount: int, *, name: str = "n") -> Envelope:
    payload = ProductUpserted(
        sku=sku, name=name, price=Money(amount=amount, currency="USD"), active=True
    )
    return event(payload)


async def held(engine: AsyncEngine, *skus: str) -> dict[str, tuple[str, int]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT sku, name, price_amount FROM orders.catalog_prices WHERE sku = ANY(:s)"),
            {"s": list(skus)},
        )
        return {row.sku: (row.name, row.price_amount) for row in rows}


async def test_a_run_of_upserts_holds_the_newest_version_of_each_sku(
    settings: OrdersSettings, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    [catalog] = [c for c in consumers(settings) if c.name == CATALOG_CONSUMER]
    [handler] = catalog.handlers.values()
    assert isinstance(handler, BatchHandler)
    lamp, desk, held_newer = (f"SKU-{uuid.uuid4().hex[:10]}" for _ in range(3))

    first = upsert(held_newer, 700, name="already newer")
    async with sessionmaker() as session, session.begin():
        await handler.apply(session, [first])

    base = first.occurred_at
    run = [
        upsert(lamp, 100, name="lamp v1").model_copy(update={"occurred_at": base}),
        upsert(desk, 5000, name="desk").model_copy(update={"occurred_at": base}),
        # The same sku three times in one run: the newest wins, whatever the order.
        upsert(lamp, 300, name="lamp v3").model_copy(
            update={"occurred_at": base + timedelta(seconds=2)}
        ),
        upsert(lamp, 200, name="lamp v2").model_copy(
            update={"occurred_at": base + timedelta(seconds=1)}
        ),
        # Older than the version held: ignored.
        upsert(held_newer, 1, name="stale").model_copy(
            update={"occurred_at": base - timedelta(days=1)}
        ),
    ]
    async with sessionmaker() as session, session.begin():
        await handler.apply(session, run)

    assert await held(engine, lamp, desk, held_newer) == {
        lamp: ("lamp v3", 300),
        desk: ("desk", 5000),
        held_newer: ("already newer", 700),
    }


async def test_of_two_versions_with_the_same_time_the_later_delivered_wins(
    settings: OrdersSettings, sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    [catalog] = [c for c in consumers(settings) if c.name == CATALOG_CONSUMER]
    [handler] = catalog.handlers.values()
    assert isinstance(handler, BatchHandler)
    sku = f"SKU-{uuid.uuid4().hex[:10]}"
    a = upsert(sku, 100, name="first")
    b = upsert(sku, 200, name="second").model_copy(update={"occurred_at": a.occurred_at})
    async with sessionmaker() as session, session.begin():
        await handler.apply(session, [a, b])
    assert await held(engine, sku) == {sku: ("second", 200)}
