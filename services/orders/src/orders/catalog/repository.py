"""Queries on the price replica."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from orders.catalog.models import CatalogPrice
from shared.db import driver_connection


@dataclass(frozen=True)
class Price:
    """One sku as the replica holds it: what an order line is charged, and if it may be."""

    sku: str
    name: str
    price_amount: int
    currency: str
    active: bool


# POST /orders reads every price it charges here: a fixed statement on the driver
# connection (the skus travel as one array), not an ORM query (~0.4 ms of CPU more).
PRICES_FOR = """
SELECT sku, name, price_amount, currency, active
FROM orders.catalog_prices
WHERE sku = ANY($1::text[])
"""


async def prices_for(*, session: AsyncSession, skus: Iterable[str]) -> dict[str, Price]:
    """The replica's prices of ``skus``, by sku; an sku it does not hold is absent."""
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    db = await driver_connection(session)
    rows = await db.fetch(PRICES_FOR, wanted)
    return {
        row["sku"]: Price(
            sku=row["sku"],
            name=row["name"],
            price_amount=row["price_amount"],
            currency=row["currency"],
            active=row["active"],
        )
        for row in rows
    }


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
