"""What a storefront does, through the gateway only: accounts, catalog, orders, payments."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.harness.platform import ROOT, Platform
from tests.harness.retrying import RETRIED_STATUSES

ADDRESS = {
    "name": "Grace Hopper",
    "line1": "1 Harbour Road",
    "city": "Arlington",
    "postal_code": "22201",
    "country": "US",
}
PASSWORD = "correct horse battery staple"
VISA = "tok_visa"  # the fake provider's card that always pays
# Statuses an order leaves on its own (the saga is still working on it).
IN_FLIGHT = frozenset({"pending", "awaiting_payment", "refund_pending"})
SETTLE_SECONDS = 90.0  # bound on a saga; only stops a hung test
COMMAND_ATTEMPTS = 5


@dataclass(frozen=True)
class Shopper:
    email: str
    user_id: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def new_email(kind: str = "buyer") -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}@example.com"


def new_sku() -> str:
    return f"E2E-{uuid.uuid4().hex[:12].upper()}"


def create_admin(
    platform: Platform, email: str, password: str = PASSWORD, *, promote: bool = False
) -> None:
    """``python -m gateway create-admin``, as an operator runs it (again if the shared
    database server had no connection slot left; the command is idempotent); ``promote``
    for an account that exists already."""
    command = [sys.executable, "-m", "gateway", "create-admin", "--email", email]
    if promote:
        command.append("--promote")
    for _ in range(COMMAND_ATTEMPTS):
        result = subprocess.run(
            [*command, "--password", password],
            env=platform.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(f"create-admin failed: {result.stderr[-2000:]}")


class Storefront:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def register(self, email: str, password: str = PASSWORD) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )

    async def login(self, email: str, password: str = PASSWORD) -> Shopper:
        reply = await self.client.post(
            "/api/v1/auth/token", data={"username": email, "password": password}
        )
        assert reply.status_code == 200, reply.text
        token = reply.json()["access_token"]
        me = await self.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        return Shopper(email=email, user_id=me.json()["id"], access_token=token)

    async def new_customer(self) -> Shopper:
        """Register and log in. A registration answered "unavailable" (502-504), or cut
        without an answer (a replica that died under it), is sent again: the email is
        unique, so a 409 then means the first one went through."""
        email = new_email()
        failure = ""
        for attempt in range(COMMAND_ATTEMPTS):
            try:
                reply = await self.register(email)
            except httpx.TransportError as exc:
                failure = repr(exc)
            else:
                if reply.status_code == 201 or (attempt and reply.status_code == 409):
                    return await self.login(email)
                assert reply.status_code in RETRIED_STATUSES, reply.text
                failure = reply.text
            await asyncio.sleep(0.5)
        raise AssertionError(f"registration kept failing: {failure}")

    async def create_product(
        self, admin: Shopper, *, stock: int, price: int = 1999, sku: str | None = None
    ) -> str:
        sku = sku or new_sku()
        reply = await self.client.post(
            "/api/v1/products",
            headers=admin.headers,
            json={
                "sku": sku,
                "name": f"Product {sku}",
                "price": {"amount": price, "currency": "USD"},
                "initial_stock": stock,
            },
        )
        assert reply.status_code == 201, reply.text
        return sku

    async def place_order(
        self,
        shopper: Shopper,
        items: dict[str, int],
        *,
        payment_token: str = VISA,
        key: str | None = None,
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "items": [{"sku": sku, "quantity": quantity} for sku, quantity in items.items()],
            "payment": {"token": payment_token},
            "shipping_address": ADDRESS,
        }
        headers = {**shopper.headers, "Idempotency-Key": key or uuid.uuid4().hex}
        return await self.client.post("/api/v1/orders", headers=headers, json=body)

    async def order(self, shopper: Shopper, order_id: str) -> httpx.Response:
        return await self.client.get(f"/api/v1/orders/{order_id}", headers=shopper.headers)

    async def wait_settled(
        self, shopper: Shopper, order_id: str, seconds: float = SETTLE_SECONDS
    ) -> dict[str, Any]:
        """Poll the order until the saga leaves it alone; the order."""
        async with asyncio.timeout(seconds):
            while True:
                reply = await self.order(shopper, order_id)
                assert reply.status_code == 200, reply.text
                order: dict[str, Any] = reply.json()
                if order["status"] not in IN_FLIGHT:
                    return order
                await asyncio.sleep(0.2)

    async def buy(
        self, shopper: Shopper, items: dict[str, int], *, payment_token: str = VISA
    ) -> dict[str, Any]:
        """Place an order and wait until it settles; the settled order."""
        reply = await self.place_order(shopper, items, payment_token=payment_token)
        assert reply.status_code == 202, reply.text
        return await self.wait_settled(shopper, reply.json()["id"])

    async def stock(
        self, admin: Shopper, sku: str, seconds: float = SETTLE_SECONDS, **expected: int
    ) -> dict[str, Any]:
        """The sku's stock; with ``expected`` fields (``on_hand=0``...), polled until they
        match or ``seconds`` pass: inventory applies an order's outcome after the order shows
        it, so a read right after the order settles may be a moment early."""
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            reply = await self.client.get(f"/api/v1/inventory/{sku}", headers=admin.headers)
            assert reply.status_code == 200, reply.text
            stock: dict[str, Any] = reply.json()
            settled = all(stock[field] == value for field, value in expected.items())
            if settled or asyncio.get_running_loop().time() >= deadline:
                return stock
            await asyncio.sleep(0.2)

    async def payments_of(self, shopper: Shopper, order_id: str) -> list[dict[str, Any]]:
        reply = await self.client.get(
            "/api/v1/payments", params={"order_id": order_id}, headers=shopper.headers
        )
        assert reply.status_code == 200, reply.text
        items: list[dict[str, Any]] = reply.json()["items"]
        return items
