"""Queries on the price replica."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from orders.catalog.models import CatalogPrice


async def prices_for(*, session: AsyncSession, skus: Iterable[str]) -> dict[str, CatalogPrice]:
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    rows = await session.scalars(select(CatalogPrice).where(CatalogPrice.sku.in_(wanted)))
    return {row.sku: row for row in rows}


async def upsert_price(
    *,
    session: AsyncSession,
    sku: str,
    name: str,
    price_amount: int,
    currency: str,
    active: bool,
    occurred_at: datetime,
) -> bool:
    """Insert or update one sku unless a newer version is already held; True if written."""
    statement = insert(CatalogPrice).values(
        sku=sku,
        name=name,
        price_amount=price_amount,
        currency=currency,
        active=active,
        source_occurred_at=occurred_at,
        updated_at=func.now(),
    )
    excluded = statement.excluded
    upsert = statement.on_conflict_do_update(
        index_elements=[CatalogPrice.sku],
        set_={
            "name": excluded.name,
            "price_amount": excluded.price_amount,
            "currency": excluded.currency,
            "active": excluded.active,
            "source_occurred_at": excluded.source_occurred_at,
            "updated_at": func.now(),
        },
        where=CatalogPrice.source_occurred_at <= excluded.source_occurred_at,
    ).returning(CatalogPrice.sku)
    return (await session.execute(upsert)).first() is not None
