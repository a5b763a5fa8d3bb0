"""Catalog queries."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.media.repository import images_of
from inventory.products.models import Product
from inventory.stock.models import StockItem

# A product, its available stock and its images (``{id, content_type}`` in upload order).
ProductWithAvailable = tuple[Product, int, list[dict[str, str]]]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_with_available(session: AsyncSession, *, sku: str) -> ProductWithAvailable | None:
    statement = (
        select(Product, StockItem.on_hand - StockItem.reserved, images_of(Product.sku))
        .join(StockItem, StockItem.sku == Product.sku)
        .where(Product.sku == sku)
    )
    row = (await session.execute(statement)).first()
    return (row[0], int(row[1]), row[2]) if row is not None else None


async def page(
    session: AsyncSession,
    *,
    after: str | None,
    limit: int,
    text: str | None,
    active_only: bool,
) -> Sequence[ProductWithAvailable]:
    """Up to ``limit`` products in sku order after ``after``, matching ``text`` if given."""
    statement = (
        select(Product, StockItem.on_hand - StockItem.reserved, images_of(Product.sku))
        .join(StockItem, StockItem.sku == Product.sku)
        .order_by(Product.sku)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(Product.sku > after)
    if active_only:
        statement = statement.where(Product.active)
    if text:
        pattern = f"%{_escape_like(text)}%"
        statement = statement.where(
            or_(
                Product.name.ilike(pattern, escape="\\"),
                Product.sku.ilike(pattern, escape="\\"),
                Product.description.ilike(pattern, escape="\\"),
            )
        )
    rows = (await session.execute(statement)).all()
    return [(row[0], int(row[1]), row[2]) for row in rows]
