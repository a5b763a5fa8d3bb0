"""Keeping the price replica current."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from orders.catalog import repository
from shared.contracts.inventory import ProductUpserted
from shared.messaging import Envelope

logger = logging.getLogger(__name__)


async def apply_products_upserted(*, session: AsyncSession, events: Sequence[Envelope]) -> None:
    """Record the products' prices and availability, a run of upserts in one statement;
    runs in the consumer's transaction. A version older than the one held is ignored."""
    versions = []
    for event in events:
        product = event.payload(ProductUpserted)  # anything else: refused (redelivered, DLQ)
        price = repository.Price(
            sku=product.sku,
            name=product.name,
            price_amount=product.price.amount,
            currency=product.price.currency,
            active=product.active,
        )
        versions.append(repository.PriceVersion(price=price, occurred_at=event.occurred_at))
    written = await repository.upsert_prices(session=session, versions=versions)
    for version in versions:
        if version.price.sku not in written:
            logger.info("ignored an older upsert of %s", version.price.sku)
