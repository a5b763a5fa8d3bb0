"""Stock levels read and locked for the admin routes and the catalog."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.products.models import Product
from inventory.stock.models import StockItem
from inventory.stock.rows import StockLevel


def _levels() -> Select[str, int, int, bool, bool, int]:
    """Stock rows with what the rules need of their products."""
    return select(
        StockItem.sku,
        StockItem.on_hand,
        StockItem.reserved,
        StockItem.low_stock_alerted,
        Product.active,
        Product.reorder_point,
    ).join(Product, Product.sku == StockItem.sku)


async def lock_stock(session: AsyncSession, *, skus: Iterable[str]) -> list[StockLevel]:
    """Lock the stock rows of ``skus`` in sku order; unknown skus are simply absent."""
    wanted = sorted(set(skus))
    if not wanted:
        return []
    statement = (
        _levels()
        .where(StockItem.sku.in_(wanted))
        .order_by(StockItem.sku)
        .with_for_update(of=StockItem)
    )
    rows = (await session.execute(statement)).mappings()
    return [StockLevel.from_row(row) for row in rows]


async def get_stock(session: AsyncSession, *, sku: str) -> StockLevel | None:
    row = (await session.execute(_levels().where(StockItem.sku == sku))).mappings().first()
    return StockLevel.from_row(row) if row is not None else None


async def low_stock_page(
    session: AsyncSession, *, after: str | None, limit: int
) -> list[StockLevel]:
    """Active products whose available stock is at or under their reorder point."""
    statement = (
        _levels()
        .where(Product.active, StockItem.on_hand - StockItem.reserved <= Product.reorder_point)
        .order_by(StockItem.sku)
        .limit(limit)
    )
    if after is not None:
        statement = statement.where(StockItem.sku > after)
    rows = (await session.execute(statement)).mappings()
    return [StockLevel.from_row(row) for row in rows]
