"""Who may see and do what: owners, admins, strangers, forgers, and callers who skip the
gateway."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jws

from tests.conftest import ProductFactory
from tests.harness.platform import Platform
from tests.harness.storefront import Shopper, Storefront

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_another_customers_order_and_payment_are_invisible(
    shop: Storefront, customer: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=2)
    order = await shop.buy(customer, {sku: 1})
    [payment] = await shop.payments_of(customer, order["id"])
    stranger = await shop.new_customer()

    path = f"/api/v1/orders/{order['id']}"
    assert (await shop.client.get(path, headers=stranger.headers)).status_code == 404
    assert (await shop.client.post(f"{path}/cancel", headers=stranger.headers)).status_code == 404
    listed = await shop.client.get("/api/v1/orders", headers=stranger.headers)
    assert listed.json()["items"] == []
    assert await shop.payments_of(stranger, order["id"]) == []
    read = await shop.client.get(f"/api/v1/payments/{payment['id']}", headers=stranger.headers)
    assert read.status_code == 404
    assert (await shop.order(customer, order["id"])).status_code == 200


ADMIN_ROUTES = [
    (
        "POST",
        "/api/v1/products",
        {"sku": "E2E-NOPE", "name": "x", "price": {"amount": 1, "currency": "USD"}},
    ),
    ("PATCH", "/api/v1/products/{sku}", {"name": "renamed"}),
    ("POST", "/api/v1/products/{sku}/stock-adjustments", {"delta": 5, "reason": "found"}),
    ("POST", "/api/v1/products/{sku}/media", None),
    ("DELETE", f"/api/v1/products/{{sku}}/media/{uuid.uuid4()}", None),
    ("GET", "/api/v1/inventory/{sku}", None),
    ("GET", "/api/v1/inventory/low-stock", None),
    ("POST", f"/api/v1/orders/{uuid.uuid4()}/ship", {"carrier": "UPS", "tracking_number": "1"}),
    ("POST", f"/api/v1/orders/{uuid.uuid4()}/deliver", None),
]


async def test_admin_routes_refuse_customers_and_anonymous_callers(
    shop: Storefront, admin: Shopper, customer: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=1)
    for method, template, body in ADMIN_ROUTES:
        path = template.format(sku=sku)
        as_customer = await shop.client.request(method, path, headers=customer.headers, json=body)
        assert as_customer.status_code == 403, (method, path, as_customer.text)
        anonymous = await shop.client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert (await shop.stock(admin, sku, on_hand=1))["on_hand"] == 1


def _claims(user_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "commerce-gateway",
        "aud": "commerce-api",
        "sub": user_id,
        "roles": ["admin"],
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        **changes,
    }


def _segments(token: str) -> list[str]:
    return token.split(".")


async def _forgeries(shop: Storefront, customer: Shopper) -> dict[str, str]:
    jwks = (await shop.client.get("/.well-known/jwks.json")).json()
    kid = jwks["keys"][0]["kid"]
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger_pem = stranger_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    header, _, signature = _segments(customer.access_token)
    promoted = jws.sign(
        _claims(customer.user_id), stranger_pem, headers={"kid": kid}, algorithm="RS256"
    )
    _, admin_payload, _ = _segments(promoted)
    unsigned = jws.sign(_claims(customer.user_id), "k", algorithm="HS256")
    return {
        "signed by another key under the real kid": promoted,
        "a customer's token with an admin payload": f"{header}.{admin_payload}.{signature}",
        "HMAC-signed": unsigned,
        "alg none": ".".join(
            [
                "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
                admin_payload,
                "",
            ]
        ),
        "expired, and signed by another key": jws.sign(
            _claims(customer.user_id, exp=int(time.time()) - 3600, roles=["customer"]),
            stranger_pem,
            headers={"kid": kid},
            algorithm="RS256",
        ),
        "not a token": "not-a-token",
    }


async def test_forged_tokens_are_refused_by_the_gateway_and_by_every_service(
    platform: Platform, shop: Storefront, customer: Shopper
) -> None:
    forgeries = await _forgeries(shop, customer)
    for what, token in forgeries.items():
        headers = {"Authorization": f"Bearer {token}"}
        through_gateway = await shop.client.get("/api/v1/inventory/low-stock", headers=headers)
        assert through_gateway.status_code == 401, what
        assert through_gateway.headers["www-authenticate"].startswith("Bearer"), what
        async with httpx.AsyncClient(timeout=30) as direct:
            for app, path in DIRECT_ROUTES:
                reply = await direct.get(f"{platform.url(app)}{path}", headers=headers)
                assert reply.status_code == 401, (what, app, path)
    me = await shop.client.get("/api/v1/auth/me", headers=customer.headers)
    assert me.status_code == 200


DIRECT_ROUTES = [
    ("inventory", "/api/v1/inventory/low-stock"),
    ("orders", "/api/v1/orders"),
    ("payments", "/api/v1/payments"),
]


async def test_calling_a_service_directly_without_a_token_is_refused(platform: Platform) -> None:
    async with httpx.AsyncClient(timeout=30) as direct:
        for app, path in DIRECT_ROUTES:
            reply = await direct.get(f"{platform.url(app)}{path}")
            assert reply.status_code == 401, (app, path, reply.text)
            assert reply.headers["www-authenticate"].startswith("Bearer")
        sneaked = await direct.post(
            f"{platform.url('inventory')}/api/v1/products",
            json={"sku": "E2E-SNEAK", "name": "x", "price": {"amount": 1, "currency": "USD"}},
        )
        assert sneaked.status_code == 401
        placed = await direct.post(
            f"{platform.url('orders')}/api/v1/orders",
            headers={"Idempotency-Key": uuid.uuid4().hex},
            json={"items": [{"sku": "X", "quantity": 1}]},
        )
        assert placed.status_code == 401
