"""Queries on the price replica."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import driver_connection


@dataclass(frozen=True)
class Price:
    """One sku as the replica holds it: what an order line is charged, and if it may be."""

    sku: str
    name: str
    price_amount: int
    currency: str
    active: bool


# POST /orders reads the prices it charges in its first statement, with the key's record
# (``orders.order.repository.KEY_AND_PRICES``): one round trip less.


@dataclass(frozen=True)
class PriceVersion:
    """One version of a sku's price, as inventory produced it."""

    price: Price
    occurred_at: datetime


# A run of upserts in one statement, the versions as arrays. A version older than the one
# held never overwrites it (queues do not order across redeliveries); an equal one does, as
# the later of two deliveries would.
UPSERT_PRICES = """
INSERT INTO orders.catalog_prices AS held
    (sku, name, price_amount, currency, active, source_occurred_at, updated_at)
SELECT v.sku, v.name, v.price_amount, v.currency, v.active, v.occurred_at, now()
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::boolean[],
            $6::timestamptz[]) AS v(sku, name, price_amount, currency, active, occurred_at)
ON CONFLICT (sku) DO UPDATE
SET name = excluded.name, price_amount = excluded.price_amount, currency = excluded.currency,
    active = excluded.active, source_occurred_at = excluded.source_occurred_at,
    updated_at = now()
WHERE held.source_occurred_at <= excluded.source_occurred_at
RETURNING sku
"""


async def upsert_prices(*, session: AsyncSession, versions: Sequence[PriceVersion]) -> set[str]:
    """Hold each sku's newest version unless a newer one is held already; the skus written.

    Of several versions of one sku, only the newest is sent (the later on a tie): one
    statement may not update a row twice.
    """
    newest: dict[str, PriceVersion] = {}
    for version in versions:
        sku = version.price.sku
        if sku not in newest or newest[sku].occurred_at <= version.occurred_at:
            newest[sku] = version
    if not newest:
        return set()
    chosen = list(newest.values())
    db = await driver_connection(session)
    rows = await db.fetch(
        UPSERT_PRICES,
        [v.price.sku for v in chosen],
        [v.price.name for v in chosen],
        [v.price.price_amount for v in chosen],
        [v.price.currency for v in chosen],
        [v.price.active for v in chosen],
        [v.occurred_at for v in chosen],
    )
    return {row["sku"] for row in rows}
