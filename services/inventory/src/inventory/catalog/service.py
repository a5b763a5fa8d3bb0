"""Catalog rules: create, change, read and list products. Owns its transactions."""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inventory.catalog import repository
from inventory.catalog.exceptions import SkuTaken, WrongCurrency
from inventory.catalog.schemas import (
    MoneyIn,
    MoneyOut,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductUpdate,
)
from inventory.config import InventorySettings
from inventory.events import outbox
from inventory.media.schemas import ImageOut, media_url
from inventory.products import repository as products
from inventory.products import staleness
from inventory.products.exceptions import ProductNotFound
from inventory.products.models import Product
from inventory.stock import service as stock
from shared.contracts.inventory import ProductUpserted
from shared.contracts.money import Money
from shared.messaging import Envelope

PRODUCTS_CURSOR = "inventory.products"


def product_out(
    product: Product, available: int, images: list[dict[str, str]] | None = None
) -> ProductOut:
    return ProductOut(
        sku=product.sku,
        name=product.name,
        description=product.description,
        price=MoneyOut(amount=product.price_amount, currency=product.price_currency),
        active=product.active,
        available=available,
        images=[
            ImageOut(
                id=uuid.UUID(image["id"]),
                url=media_url(image["id"]),
                content_type=image["content_type"],
            )
            for image in images or ()
        ],
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def _check_currency(price: MoneyIn, settings: InventorySettings) -> None:
    if price.currency != settings.currency:
        raise WrongCurrency(price.currency, settings.currency)


def _upserted(product: Product) -> Envelope:
    return Envelope.new(
        ProductUpserted(
            sku=product.sku,
            name=product.name,
            price=Money(amount=product.price_amount, currency=product.price_currency),
            active=product.active,
        )
    )


async def create_product(
    *, session: AsyncSession, settings: InventorySettings, data: ProductCreate, actor: str
) -> ProductOut:
    """A new product with its stock row (and initial stock as a ledger entry); 409 if taken."""
    _check_currency(data.price, settings)
    async with session.begin():
        product = Product(
            sku=data.sku,
            name=data.name,
            description=data.description,
            price_amount=data.price.amount,
            price_currency=data.price.currency,
            active=True,
            reorder_point=data.reorder_point,
        )
        session.add(product)
        try:
            # Flushed alone so the primary key decides between two concurrent creations.
            await session.flush()
        except IntegrityError:
            raise SkuTaken(data.sku) from None
        staleness.mark_stale(session, [data.sku])  # list pages show it from now on
        await stock.open_stock(
            session=session,
            sku=data.sku,
            on_hand=data.initial_stock,
            reorder_point=data.reorder_point,
            actor=actor,
        )
        await outbox.add(session, _upserted(product))
        await session.refresh(product)
    return product_out(product, data.initial_stock)


async def update_product(
    *,
    session: AsyncSession,
    settings: InventorySettings,
    sku: str,
    changes: ProductUpdate,
    actor: str,
) -> ProductOut:
    """Apply the fields sent; emit product_upserted only if name, price or active changed."""
    fields = changes.model_fields_set
    if changes.price is not None:
        _check_currency(changes.price, settings)
    async with session.begin():
        product = await products.get(session, sku=sku, for_update=True)
        if product is None:
            raise ProductNotFound(sku)
        staleness.mark_stale(session, [sku])
        replicated_before = (product.name, product.price_amount, product.active)
        before = (*replicated_before, product.description, product.reorder_point)
        if changes.name is not None:
            product.name = changes.name
        if "description" in fields:
            product.description = changes.description
        if changes.price is not None:
            product.price_amount = changes.price.amount
            product.price_currency = changes.price.currency
        if changes.active is not None:
            product.active = changes.active
        if changes.reorder_point is not None:
            product.reorder_point = changes.reorder_point
        replicated_after = (product.name, product.price_amount, product.active)
        after = (*replicated_after, product.description, product.reorder_point)
        events = []
        if after != before:
            product.updated_at = func.now()
            await session.flush()
        if replicated_after != replicated_before:
            events.append(_upserted(product))
        if after[-1] != before[-1]:
            # A new reorder point can put the product under it (or lift it out): that is a
            # crossing too.
            low = await stock.recheck_low_stock(session=session, sku=sku)
            events.extend(Envelope.new(event) for event in low)
        await outbox.add_many(session, events)
        await session.flush()
        await session.refresh(product)
        found = await repository.get_with_available(session, sku=sku)
        assert found is not None  # locked above, products are never deleted
    return product_out(*found)


async def get_product(*, session: AsyncSession, sku: str, include_inactive: bool) -> ProductOut:
    """One product; an inactive one is not for sale, so only admins (``include_inactive``)
    see it: anyone else gets the 404 of a sku that does not exist."""
    found = await repository.get_with_available(session, sku=sku)
    if found is None or not (include_inactive or found[0].active):
        raise ProductNotFound(sku)
    return product_out(*found)


async def list_products(
    *,
    session: AsyncSession,
    settings: InventorySettings,
    limit: int,
    cursor: str | None,
    text: str | None,
    include_inactive: bool,
) -> ProductPage:
    cursors = settings.cursor_codec
    rows = await repository.page(
        session,
        after=cursors.after(PRODUCTS_CURSOR, cursor),
        limit=limit + 1,
        text=text,
        active_only=not include_inactive,
    )
    page, next_cursor = cursors.page(
        PRODUCTS_CURSOR, rows, limit=limit, position=lambda row: row[0].sku
    )
    return ProductPage(items=[product_out(*row) for row in page], next_cursor=next_cursor)
