"""A steady stream of orders from several shoppers, as a storefront under load sends them.

A request answered 503 or cut off is sent again with the same Idempotency-Key (the client's
transport does it, see ``retrying``), and so is one answered 409 because its first attempt
is still in flight; the key makes every retry safe. Any other answer but 202 fails the test.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import httpx

from tests.harness.storefront import Shopper, Storefront

RETRIES = 20
RETRY_PAUSE_SECONDS = 0.5
DECLINED = "tok_chargeDeclined"


@dataclass
class Placed:
    shopper: Shopper
    order_id: str


@dataclass
class OrderStream:
    shop: Storefront
    shoppers: list[Shopper]
    skus: list[str]
    placed: list[Placed] = field(default_factory=list)

    async def place(self, count: int, *, pause: float = 0.05) -> None:
        """Place ``count`` orders one after another; every fifth pays with a declined card."""
        for _ in range(count):
            n = len(self.placed)
            shopper = self.shoppers[n % len(self.shoppers)]
            items = {self.skus[n % len(self.skus)]: 1 + n % 2}
            token = DECLINED if n % 5 == 4 else "tok_visa"
            order_id = await self._place_with_retries(shopper, items, token)
            self.placed.append(Placed(shopper, order_id))
            await asyncio.sleep(pause)

    async def _place_with_retries(self, shopper: Shopper, items: dict[str, int], token: str) -> str:
        key = uuid.uuid4().hex
        last = "no attempt"
        for _ in range(RETRIES):
            try:
                reply = await self.shop.place_order(shopper, items, payment_token=token, key=key)
            except httpx.TransportError as exc:
                last = repr(exc)
            else:
                if reply.status_code == 202:
                    order_id: str = reply.json()["id"]
                    return order_id
                if reply.status_code != 409:
                    raise AssertionError(f"order refused: {reply.status_code} {reply.text}")
                last = f"{reply.status_code} {reply.text}"
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
        raise AssertionError(f"order never accepted after {RETRIES} attempts: {last}")

    async def settled(self) -> list[str]:
        """Wait until every placed order settles; their statuses."""
        orders = await asyncio.gather(
            *(self.shop.wait_settled(p.shopper, p.order_id) for p in self.placed)
        )
        return [order["status"] for order in orders]
