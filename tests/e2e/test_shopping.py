"""A storefront's journeys through the gateway, from registration to delivery or refund."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import ProductFactory
from tests.harness.storefront import Shopper, Storefront, new_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_a_new_customer_registers_logs_in_browses_orders_pays_and_the_stock_is_taken(
    shop: Storefront, admin: Shopper, gateway_client: httpx.AsyncClient, product: ProductFactory
) -> None:
    email = new_email()
    registered = await shop.register(email)
    assert registered.status_code == 201
    assert registered.json()["roles"] == ["customer"]
    assert (await shop.register(email)).status_code == 409
    shopper = await shop.login(email)

    tag = uuid.uuid4().hex[:10].upper()
    skus = [await product(stock=10, sku=f"E2E-{tag}-{n}") for n in range(3)]
    first = await gateway_client.get("/api/v1/products", params={"q": tag, "limit": 2})
    assert first.status_code == 200
    assert [item["sku"] for item in first.json()["items"]] == skus[:2]
    cursor = first.json()["next_cursor"]
    assert cursor
    second = await gateway_client.get(
        "/api/v1/products", params={"q": tag, "limit": 2, "cursor": cursor}
    )
    assert [item["sku"] for item in second.json()["items"]] == skus[2:]
    assert second.json()["next_cursor"] is None

    sku = skus[0]
    read = await gateway_client.get(f"/api/v1/products/{sku}")
    assert read.status_code == 200
    assert read.json()["available"] == 10
    etag = read.headers["etag"]
    again = await gateway_client.get(f"/api/v1/products/{sku}", headers={"If-None-Match": etag})
    assert again.status_code == 304

    placed = await shop.place_order(shopper, {sku: 2})
    assert placed.status_code == 202, placed.text
    assert placed.headers["location"] == f"/api/v1/orders/{placed.json()['id']}"
    assert placed.json()["status"] == "pending"
    assert placed.json()["total"] == {"amount": 2 * 1999, "currency": "USD"}

    order = await shop.wait_settled(shopper, placed.json()["id"])
    assert order["status"] == "confirmed"
    assert [step["status"] for step in order["status_history"]] == [
        "pending",
        "awaiting_payment",
        "confirmed",
    ]
    stock = await shop.stock(admin, sku, on_hand=8, reserved=0)
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (8, 0, 8)
    [payment] = await shop.payments_of(shopper, order["id"])
    assert payment["status"] == "succeeded"
    assert payment["amount"] == order["total"]
    changed = await gateway_client.get(f"/api/v1/products/{sku}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["available"] == 8


async def test_a_declined_card_cancels_the_order_and_puts_the_stock_back(
    shop: Storefront, admin: Shopper, customer: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=5)
    order = await shop.buy(customer, {sku: 3}, payment_token="tok_chargeDeclined")
    assert order["status"] == "cancelled"
    assert order["status_history"][-1]["reason"] == "card_declined"
    [payment] = await shop.payments_of(customer, order["id"])
    assert (payment["status"], payment["failure_reason"]) == ("failed", "card_declined")
    stock = await shop.stock(admin, sku, on_hand=5, reserved=0)
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (5, 0, 5)


async def test_an_order_for_more_than_is_in_stock_is_rejected_whole(
    shop: Storefront, admin: Shopper, customer: Shopper, product: ProductFactory
) -> None:
    plenty = await product(stock=10)
    scarce = await product(stock=1)
    order = await shop.buy(customer, {plenty: 2, scarce: 2})
    assert order["status"] == "rejected"
    assert order["status_history"][-1]["reason"] == "out_of_stock"
    assert await shop.payments_of(customer, order["id"]) == []
    for sku, on_hand in ((plenty, 10), (scarce, 1)):
        stock = await shop.stock(admin, sku, on_hand=on_hand, reserved=0)
        assert (stock["on_hand"], stock["reserved"]) == (on_hand, 0)


async def test_cancelling_a_paid_order_refunds_it_and_puts_the_stock_back(
    shop: Storefront, admin: Shopper, customer: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=4)
    order = await shop.buy(customer, {sku: 4})
    assert order["status"] == "confirmed"
    assert (await shop.stock(admin, sku, on_hand=0))["on_hand"] == 0

    cancelled = await shop.client.post(
        f"/api/v1/orders/{order['id']}/cancel", headers=customer.headers
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "refund_pending"
    refunded = await shop.wait_settled(customer, order["id"])
    assert refunded["status"] == "refunded"
    [payment] = await shop.payments_of(customer, order["id"])
    assert payment["status"] == "refunded"
    assert payment["refunded_amount"] == payment["amount"]
    stock = await shop.stock(admin, sku, on_hand=4, reserved=0)
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (4, 0, 4)


async def test_an_admin_ships_and_delivers_a_paid_order_which_can_then_not_be_cancelled(
    shop: Storefront, admin: Shopper, customer: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=3)
    order = await shop.buy(customer, {sku: 1})
    assert order["status"] == "confirmed"
    path = f"/api/v1/orders/{order['id']}"
    shipment = {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}

    assert (
        await shop.client.post(f"{path}/ship", headers=customer.headers, json=shipment)
    ).status_code == 403
    shipped = await shop.client.post(f"{path}/ship", headers=admin.headers, json=shipment)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "shipped"
    assert shipped.json()["shipment"] == shipment
    assert (await shop.client.post(f"{path}/cancel", headers=customer.headers)).status_code == 409
    delivered = await shop.client.post(f"{path}/deliver", headers=admin.headers)
    assert delivered.status_code == 200
    assert delivered.json()["status"] == "delivered"
    final = (await shop.order(customer, order["id"])).json()
    assert [step["status"] for step in final["status_history"]][-2:] == ["shipped", "delivered"]
    stock = await shop.stock(admin, sku, on_hand=2, reserved=0)
    assert (stock["on_hand"], stock["reserved"]) == (2, 0)
