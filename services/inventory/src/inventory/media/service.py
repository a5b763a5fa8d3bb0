"""Media rules: store an upload, find one, delete one. Owns its transactions."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession

from inventory.media import repository
from inventory.media.exceptions import ACCEPTED_TYPES, MediaNotFound, UnsupportedMediaType
from inventory.media.models import ProductMedia
from inventory.media.schemas import MediaOut, media_url
from inventory.media.storage import MediaStorage
from inventory.products import repository as products
from inventory.products import staleness
from inventory.products.exceptions import ProductNotFound

logger = logging.getLogger(__name__)


def media_type(content_type: str | None) -> str:
    """The declared media type, if one this service stores; 415 otherwise."""
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared not in ACCEPTED_TYPES:
        raise UnsupportedMediaType(f"Content-Type {declared or '(none)'} is not accepted.")
    return declared


def media_out(media: ProductMedia) -> MediaOut:
    return MediaOut(
        id=media.id,
        url=media_url(media.id),
        content_type=media.content_type,
        size=media.size,
        sha256=media.sha256,
    )


async def check_product(*, session: AsyncSession, sku: str) -> None:
    """404 before a byte of the upload is read, and no connection held while it streams."""
    async with session.begin():
        if await products.get(session, sku=sku) is None:
            raise ProductNotFound(sku)


async def upload(
    *,
    session: AsyncSession,
    storage: MediaStorage,
    sku: str,
    content_type: str,
    body: AsyncIterator[bytes],
    limit: int,
) -> MediaOut:
    """Stream the body to storage, publish it under its sha256, then record it.

    The file is durable under its final name before its row commits: a crash before the
    commit leaves at most an unreferenced file (swept), never a row without its file.
    """
    staged = await storage.stage(body, content_type=content_type, limit=limit)
    try:
        async with session.begin():
            await repository.lock_content(session, sha256=staged.sha256)
            await asyncio.to_thread(storage.publish, staged)
            media = ProductMedia(
                sku=sku, sha256=staged.sha256, content_type=content_type, size=staged.size
            )
            session.add(media)
            await session.flush()
            staleness.mark_stale(session, [sku])  # the product's `images` changed
    finally:
        storage.discard(staged)  # gone already once published
    return media_out(media)


async def get_media(*, session: AsyncSession, media_id: uuid.UUID) -> ProductMedia:
    async with session.begin():
        media = await repository.get(session, media_id=media_id)
    if media is None:
        raise MediaNotFound()
    return media


async def delete_media(
    *, session: AsyncSession, storage: MediaStorage, sku: str, media_id: uuid.UUID
) -> None:
    """Drop the row, then the file unless another upload of the same bytes still names it."""
    async with session.begin():
        media = await repository.get(session, media_id=media_id)
        if media is None or media.sku != sku:
            raise MediaNotFound()
        sha256 = media.sha256
        await repository.delete_one(session, media_id=media_id)
        staleness.mark_stale(session, [sku])  # the product's `images` changed
    await remove_if_unreferenced(session=session, storage=storage, sha256=sha256)


async def remove_if_unreferenced(
    *, session: AsyncSession, storage: MediaStorage, sha256: str
) -> bool:
    """Remove a content file no row names; whether it was removed."""
    async with session.begin():
        await repository.lock_content(session, sha256=sha256)
        if await repository.referenced(session, sha256s=[sha256]):
            return False
        return await asyncio.to_thread(storage.remove, sha256)
