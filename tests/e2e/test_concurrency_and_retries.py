"""Many buyers at once, and a client that retries: the shop sells what it has, once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import ProductFactory
from tests.harness.storefront import Shopper, Storefront

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BUYERS = 60
UNITS = 10


async def test_sixty_buyers_race_for_the_last_ten_units_and_exactly_ten_are_confirmed(
    shop: Storefront, admin: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=UNITS)
    buyers = await asyncio.gather(*(shop.new_customer() for _ in range(BUYERS)))

    placed = await asyncio.gather(*(shop.place_order(buyer, {sku: 1}) for buyer in buyers))
    assert [reply.status_code for reply in placed] == [202] * BUYERS
    orders = await asyncio.gather(
        *(
            shop.wait_settled(buyer, reply.json()["id"])
            for buyer, reply in zip(buyers, placed, strict=True)
        )
    )

    statuses = [order["status"] for order in orders]
    assert statuses.count("confirmed") == UNITS
    assert statuses.count("rejected") == BUYERS - UNITS
    stock = await shop.stock(admin, sku, on_hand=0, reserved=0)
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (0, 0, 0)


async def test_retrying_an_order_with_its_idempotency_key_places_it_once(
    shop: Storefront, admin: Shopper, customer: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=5)
    key = uuid.uuid4().hex
    first = await shop.place_order(customer, {sku: 2}, key=key)
    retried = await shop.place_order(customer, {sku: 2}, key=key)
    assert first.status_code == retried.status_code == 202
    assert retried.json()["id"] == first.json()["id"]
    assert retried.headers["idempotent-replayed"] == "true"

    other_body = await shop.place_order(customer, {sku: 3}, key=key)
    assert other_body.status_code == 422
    missing_key = await shop.client.post(
        "/api/v1/orders", headers=customer.headers, json={"items": []}
    )
    assert missing_key.status_code in (400, 422)

    order = await shop.wait_settled(customer, first.json()["id"])
    assert order["status"] == "confirmed"
    listed = await shop.client.get("/api/v1/orders", headers=customer.headers)
    assert [item["id"] for item in listed.json()["items"]] == [order["id"]]
    assert len(await shop.payments_of(customer, order["id"])) == 1
    assert (await shop.stock(admin, sku, on_hand=3))["on_hand"] == 3
