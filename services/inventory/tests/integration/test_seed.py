"""`python -m inventory seed`: demo data that can be loaded again and again."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.config import InventorySettings
from inventory.products.models import Product
from inventory.seed import DEMO_PRODUCTS, seed
from inventory.stock.models import StockItem


async def test_seeding_twice_creates_the_demo_catalog_once_with_its_stock(
    settings: InventorySettings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    skus = [product[0] for product in DEMO_PRODUCTS]
    first = await seed(settings)
    second = await seed(settings)
    assert (first, second) == (len(DEMO_PRODUCTS), 0)
    async with sessionmaker() as session:
        count = await session.scalar(select(func.count()).where(Product.sku.in_(skus)))
        stock = dict((await session.execute(select(StockItem.sku, StockItem.on_hand))).all())
    assert count == len(DEMO_PRODUCTS)
    assert {sku: stock[sku] for sku in skus} == {p[0]: p[4] for p in DEMO_PRODUCTS}
