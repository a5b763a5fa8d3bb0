"""Stock over HTTP: levels, adjustments with their ledger, the low-stock list and alarm."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.stock.models import StockMovement
from inventory.stock.runs import OrderLine
from services.inventory.tests.integration import test_reservations

PRODUCTS = "/api/v1/products"


async def create(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str, stock: int, reorder_point: int = 0
) -> None:
    body = {
        "sku": sku,
        "name": f"Product {sku}",
        "price": {"amount": 500, "currency": "USD"},
        "initial_stock": stock,
        "reorder_point": reorder_point,
    }
    response = await client.post(PRODUCTS, json=body, headers=admin)
    assert response.status_code == 201, response.text


async def adjust(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str, delta: Any, reason: str = "count"
) -> httpx.Response:
    body = {"delta": delta, "reason": reason}
    return await client.post(f"{PRODUCTS}/{sku}/stock-adjustments", json=body, headers=admin)


async def reserve(
    sessionmaker: async_sessionmaker[AsyncSession], sku: str, quantity: int
) -> uuid.UUID:
    order_id = uuid.uuid4()
    outcome = await test_reservations.reserve(sessionmaker, [OrderLine(sku, quantity)], order_id)
    assert outcome.reserved
    return order_id


async def test_an_adjustment_changes_on_hand_and_is_written_to_the_ledger(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sku: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await create(client, admin, sku, stock=10, reorder_point=2)
    response = await adjust(client, admin, sku, -3, "damaged in storage")
    assert response.status_code == 201
    assert response.json() == {
        "sku": sku,
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
        "reorder_point": 2,
    }
    assert (await client.get(f"/api/v1/inventory/{sku}", headers=admin)).json()["on_hand"] == 7
    async with sessionmaker() as session:
        ledger = (
            await session.execute(
                select(StockMovement.kind, StockMovement.on_hand_delta, StockMovement.reason)
                .where(StockMovement.sku == sku)
                .order_by(StockMovement.id)
            )
        ).all()
    assert [tuple(row) for row in ledger] == [
        ("adjustment", 10, "initial stock"),
        ("adjustment", -3, "damaged in storage"),
    ]


async def test_an_adjustment_below_what_is_reserved_is_409_and_changes_nothing(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sku: str,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await create(client, admin, sku, stock=10)
    await reserve(sessionmaker, sku, 8)
    refused = await adjust(client, admin, sku, -3)
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    stock = (await client.get(f"/api/v1/inventory/{sku}", headers=admin)).json()
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (10, 8, 2)
    assert (await adjust(client, admin, sku, -2)).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"delta": 0, "reason": "nothing"},
        {"delta": 1.5, "reason": "half"},
        {"delta": "3", "reason": "string"},
        {"delta": 3},
        {"delta": 3, "reason": ""},
        {"delta": 3, "reason": "ok", "on_hand": 100},
    ],
)
async def test_invalid_adjustments_are_422(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str, body: dict[str, Any]
) -> None:
    await create(client, admin, sku, stock=1)
    response = await client.post(f"{PRODUCTS}/{sku}/stock-adjustments", json=body, headers=admin)
    assert response.status_code == 422
    stock = (await client.get(f"/api/v1/inventory/{sku}", headers=admin)).json()
    assert stock["on_hand"] == 1


async def test_stock_below_zero_is_refused(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str
) -> None:
    await create(client, admin, sku, stock=2)
    assert (await adjust(client, admin, sku, -3)).status_code == 409


async def test_adjusting_an_unknown_product_is_404(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str
) -> None:
    assert (await adjust(client, admin, sku, 1)).status_code == 404


async def test_stock_routes_are_for_admins_only(
    client: httpx.AsyncClient, admin: dict[str, str], customer: dict[str, str], sku: str
) -> None:
    await create(client, admin, sku, stock=1)
    for path in [f"/api/v1/inventory/{sku}", "/api/v1/inventory/low-stock"]:
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers=customer)).status_code == 403
    anonymous = await client.post(
        f"{PRODUCTS}/{sku}/stock-adjustments", json={"delta": 1, "reason": "x"}
    )
    assert anonymous.status_code == 401


async def test_stock_low_is_emitted_once_per_crossing_and_listed(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sku: str,
    outbox_events: Callable[..., Any],
) -> None:
    await create(client, admin, sku, stock=10, reorder_point=5)
    for _ in range(3):
        await adjust(client, admin, sku, -2)  # 8, 6, 4: crosses at 4
    await adjust(client, admin, sku, -1)  # 3: still under, no second alarm
    low = await client.get("/api/v1/inventory/low-stock", params={"limit": 100}, headers=admin)
    listed = [item for item in low.json()["items"] if item["sku"] == sku]
    assert listed == [{"sku": sku, "on_hand": 3, "reserved": 0, "available": 3, "reorder_point": 5}]
    await adjust(client, admin, sku, 10)  # 13: back above, re-armed
    await adjust(client, admin, sku, -9)  # 4: a second crossing
    events = await outbox_events("inventory.stock_low", lambda d: d["sku"] == sku)
    assert events == [
        {"sku": sku, "available": 4, "reorder_point": 5},
        {"sku": sku, "available": 4, "reorder_point": 5},
    ]


async def test_low_stock_is_not_mistaken_for_a_sku(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.get("/api/v1/inventory/low-stock", headers=admin)
    assert response.status_code == 200
    assert set(response.json()) == {"items", "next_cursor"}
    assert (await client.get("/api/v1/inventory/bad_sku", headers=admin)).status_code == 422


async def test_a_new_reorder_point_is_a_crossing_too(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sku: str,
    outbox_events: Callable[..., Any],
) -> None:
    await create(client, admin, sku, stock=5, reorder_point=0)

    async def reorder_at(point: int) -> list[str]:
        body = {"reorder_point": point}
        response = await client.patch(f"{PRODUCTS}/{sku}", json=body, headers=admin)
        assert response.status_code == 200, response.text
        low = await client.get("/api/v1/inventory/low-stock", params={"limit": 100}, headers=admin)
        return [item["sku"] for item in low.json()["items"] if item["sku"] == sku]

    assert await reorder_at(5) == [sku]  # 5 available, now at the point: low
    assert await reorder_at(6) == [sku]  # still under: already said
    assert await reorder_at(1) == []  # lifted out: re-armed, silently
    assert await reorder_at(5) == [sku]  # a second crossing
    events = await outbox_events("inventory.stock_low", lambda d: d["sku"] == sku)
    assert events == [{"sku": sku, "available": 5, "reorder_point": 5}] * 2
