"""The public catalog reads, as the bodies the catalog cache stores and the routes answer.

Each read opens its own session: a cache fill is shared by every request missing the same
key, so it must not depend on the one request that started it staying connected.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.catalog import service
from inventory.config import InventorySettings


async def product_body(sessionmaker: async_sessionmaker[AsyncSession], sku: str) -> bytes:
    """An active product as anyone but an admin sees it; ``ProductNotFound`` otherwise."""
    async with sessionmaker() as session:
        product = await service.get_product(session=session, sku=sku, include_inactive=False)
    return product.model_dump_json().encode()


async def page_body(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: InventorySettings,
    *,
    limit: int,
    cursor: str | None,
    text: str | None,
) -> bytes:
    """A page of active products as anyone but an admin sees it."""
    async with sessionmaker() as session:
        page = await service.list_products(
            session=session,
            settings=settings,
            limit=limit,
            cursor=cursor,
            text=text,
            include_inactive=False,
        )
    return page.model_dump_json().encode()


def check_cursor(settings: InventorySettings, cursor: str | None) -> None:
    """Refuse a cursor the server did not issue (400) before the cache is asked about it."""
    if cursor is not None:
        settings.cursor_codec.decode(service.PRODUCTS_CURSOR, cursor)
