"""The product row by its sku: the catalog edits through it, media checks a product exists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.products.models import Product


async def get(session: AsyncSession, *, sku: str, for_update: bool = False) -> Product | None:
    statement = select(Product).where(Product.sku == sku)
    if for_update:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()
