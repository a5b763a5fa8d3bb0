"""Keeping the price replica current."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from orders.catalog import repository
from shared.contracts.inventory import ProductUpserted
from shared.messaging import Envelope

logger = logging.getLogger(__name__)


async def apply_product_upserted(*, session: AsyncSession, event: Envelope) -> None:
    """Record a product's price and availability; runs in the consumer's transaction."""
    product = event.payload(ProductUpserted)
    written = await repository.upsert_price(
        session=session,
        sku=product.sku,
        name=product.name,
        price_amount=product.price.amount,
        currency=product.price.currency,
        active=product.active,
        occurred_at=event.occurred_at,
    )
    if not written:
        logger.info("ignored an older upsert of %s (event %s)", product.sku, event.id)
