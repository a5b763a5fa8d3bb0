"""Hostile text through the gateway: every service answers a 4xx, never a 500.

Fuzzing found that a NUL character in any text (a search, a product name, an address, an
email) reached Postgres, which cannot store it, and came back as a 500 from every service.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import ProductFactory
from tests.harness.storefront import ADDRESS, Shopper, Storefront

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NUL = "\u0000"


def _order(sku: str, **address: str) -> dict[str, Any]:
    return {
        "items": [{"sku": sku, "quantity": 1}],
        "payment": {"token": "tok_visa"},
        "shipping_address": {**ADDRESS, **address},
    }


async def test_text_with_a_nul_character_is_refused_by_every_service_never_a_500(
    shop: Storefront, admin: Shopper, customer: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=5)
    client = shop.client
    price = {"amount": 100, "currency": "USD"}
    new_sku = f"E2E-NUL-{uuid.uuid4().hex[:8].upper()}"
    order_headers = {**customer.headers, "Idempotency-Key": uuid.uuid4().hex}
    replies = {
        "search": await client.get("/api/v1/products", params={"q": f"a{NUL}b"}),
        "product name": await client.post(
            "/api/v1/products",
            headers=admin.headers,
            json={"sku": new_sku, "name": f"a{NUL}", "price": price},
        ),
        "product patch": await client.patch(
            f"/api/v1/products/{sku}", headers=admin.headers, json={"name": f"a{NUL}b"}
        ),
        "adjustment reason": await client.post(
            f"/api/v1/products/{sku}/stock-adjustments",
            headers=admin.headers,
            json={"delta": 1, "reason": f"found{NUL}"},
        ),
        "order address": await client.post(
            "/api/v1/orders", headers=order_headers, json=_order(sku, name=f"Ada{NUL}")
        ),
        "registration": await client.post(
            "/api/v1/auth/register",
            json={"email": f"nul{NUL}@example.com", "password": "correct horse battery"},
        ),
        "login": await client.post(
            "/api/v1/auth/token", data={"username": f"a{NUL}@example.com", "password": "x" * 12}
        ),
    }
    statuses = {what: reply.status_code for what, reply in replies.items()}
    assert all(400 <= status < 500 for status in statuses.values()), statuses
    stock = await shop.stock(admin, sku, on_hand=5, reserved=0)
    assert (stock["on_hand"], stock["reserved"]) == (5, 0)
