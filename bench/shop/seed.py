"""What the scenarios need, created through the gateway: an admin, customers, products."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import httpx

from tests.harness import database
from tests.harness.platform import Platform
from tests.harness.storefront import Storefront, create_admin, new_email

STOCK = 1_000_000_000  # never the limit: the benchmark measures the pipeline, not sell-outs
PRODUCTS = 8
REPLICA_SECONDS = 60.0


@dataclass(frozen=True)
class Catalog:
    admin_token: str
    customer_tokens: list[str]
    skus: list[str]


async def seed(platform: Platform, *, customers: int) -> Catalog:
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=60) as client:
        shop = Storefront(client)
        email = new_email("bench-admin")
        await asyncio.to_thread(create_admin, platform, email)
        admin = await shop.login(email)
        skus = [
            await shop.create_product(admin, stock=STOCK, price=500 + 100 * n)
            for n in range(PRODUCTS)
        ]
        # Argon2 makes registration slow on purpose: a few at a time.
        shoppers = []
        for start in range(0, customers, 4):
            batch = range(start, min(customers, start + 4))
            shoppers += await asyncio.gather(*(shop.new_customer() for _ in batch))
    await _wait_for_prices(platform, skus)
    return Catalog(admin.access_token, [s.access_token for s in shoppers], skus)


async def _wait_for_prices(platform: Platform, skus: list[str]) -> None:
    """Orders prices from its replica, fed by events: wait until it knows every product."""
    db = await database.connect(platform.database)
    try:
        async with asyncio.timeout(REPLICA_SECONDS):
            while await db.fetchval(  # noqa: ASYNC110 (polling another process's database)
                "SELECT count(*) FROM orders.catalog_prices WHERE sku = ANY($1::text[])", skus
            ) < len(skus):
                await asyncio.sleep(0.2)
    finally:
        await db.close()


async def reader(platform: Platform) -> asyncpg.Connection:
    """A superuser connection to the platform's database, to read the order histories."""
    return await database.connect(platform.database)
