"""Demo data: a small catalog with stock, so a fresh shop is usable at once.

Idempotent: a product whose sku exists is left as it is (stock included), so running it on
every `make dev` never duplicates or resets anything. Products go through the catalog
service, so each new one is announced with ``inventory.product_upserted`` like any other.
"""

from __future__ import annotations

import asyncio
import logging

from inventory.catalog.exceptions import SkuTaken
from inventory.catalog.schemas import MoneyIn, ProductCreate
from inventory.catalog.service import create_product
from inventory.config import InventorySettings
from shared.db import create_engine, create_sessionmaker

logger = logging.getLogger(__name__)

SEED_ACTOR = "seed"

# (sku, name, description, price in minor units, initial stock, reorder point)
DEMO_PRODUCTS: tuple[tuple[str, str, str, int, int, int], ...] = (
    ("MUG-CLASSIC", "Classic mug", "Stoneware mug, 350 ml.", 1299, 120, 20),
    ("TEE-BLACK-M", "Black T-shirt (M)", "Organic cotton, medium.", 1999, 60, 10),
    ("TEE-BLACK-L", "Black T-shirt (L)", "Organic cotton, large.", 1999, 45, 10),
    ("NOTEBOOK-A5", "A5 notebook", "Dotted pages, lay-flat binding.", 899, 200, 25),
    ("PEN-GEL-BLUE", "Blue gel pen", "0.5 mm, refillable.", 349, 500, 50),
    ("BOTTLE-STEEL", "Steel bottle", "Insulated, 750 ml.", 2899, 30, 5),
    ("TOTE-CANVAS", "Canvas tote", "Heavy canvas, long handles.", 1599, 80, 10),
    ("STICKER-PACK", "Sticker pack", "Ten vinyl stickers.", 499, 8, 10),
)


async def seed(settings: InventorySettings) -> int:
    """Create the demo products that do not exist yet; how many were created."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    created = 0
    try:
        for sku, name, description, amount, stock, reorder_point in DEMO_PRODUCTS:
            data = ProductCreate(
                sku=sku,
                name=name,
                description=description,
                price=MoneyIn(amount=amount, currency=settings.currency),
                initial_stock=stock,
                reorder_point=reorder_point,
            )
            async with sessionmaker() as session:
                try:
                    await create_product(
                        session=session, settings=settings, data=data, actor=SEED_ACTOR
                    )
                    created += 1
                except SkuTaken:
                    pass  # seeded before: leave it, and its stock, as it is
    finally:
        await engine.dispose()
    return created


def main(settings: InventorySettings) -> None:
    created = asyncio.run(seed(settings))
    print(f"inventory seed: {created} products created, {len(DEMO_PRODUCTS) - created} existed")
