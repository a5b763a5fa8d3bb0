"""Media queries, and the lock that orders a file's publication against its removal."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import ScalarSelect, delete, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from inventory.media.models import ProductMedia


def _lock_key(sha256: str) -> int:
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


async def lock_content(session: AsyncSession, *, sha256: str) -> None:
    """Held until the transaction ends. An upload publishes its file and records its row
    under it; a removal checks that no row names the file and unlinks it under it: so a
    file is never removed between its publication and its row."""
    await session.execute(select(func.pg_advisory_xact_lock(_lock_key(sha256))))


async def get(session: AsyncSession, *, media_id: uuid.UUID) -> ProductMedia | None:
    return await session.get(ProductMedia, media_id)


async def delete_one(session: AsyncSession, *, media_id: uuid.UUID) -> None:
    await session.execute(delete(ProductMedia).where(ProductMedia.id == media_id))


async def referenced(session: AsyncSession, *, sha256s: Collection[str]) -> set[str]:
    """Which of these contents some row still names."""
    if not sha256s:
        return set()
    statement = select(ProductMedia.sha256).where(ProductMedia.sha256.in_(sha256s)).distinct()
    return set((await session.execute(statement)).scalars())


def images_of(sku: InstrumentedAttribute[str]) -> ScalarSelect[list[dict[str, str]]]:
    """A product's images in upload order, as one JSON column of the product's own query."""
    image = func.jsonb_build_object(
        literal("id"), ProductMedia.id, literal("content_type"), ProductMedia.content_type
    )
    images = func.coalesce(
        func.jsonb_agg(aggregate_order_by(image, ProductMedia.seq)),
        func.jsonb_build_array(),
        type_=JSONB,
    )
    return select(images).where(ProductMedia.sku == sku).scalar_subquery()
