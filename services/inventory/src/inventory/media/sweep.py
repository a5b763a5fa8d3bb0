"""The media sweep, run by every worker: removes what a crash or a delete left behind.

Temporary files older than the grace period belong to no upload still running (an upload
writes its file within one request); content files no row names are removed under the
same lock an upload publishes under (``repository.lock_content``), so a file is never
removed between its publication and its row. Several workers may sweep at once: each
removal is checked and done under that lock, and a file already gone is no error.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.config import InventorySettings
from inventory.media import repository
from inventory.media.service import remove_if_unreferenced
from inventory.media.storage import MediaStorage

logger = logging.getLogger(__name__)

_BATCH = 500


@dataclass(frozen=True, slots=True)
class SweepResult:
    temporary_files: int
    content_files: int


def _remove_stale_temporary(storage: MediaStorage, grace_seconds: float) -> int:
    removed = 0
    for path in storage.stale_temporary_files(grace_seconds):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


async def sweep_media_once(
    *, sessionmaker: async_sessionmaker[AsyncSession], storage: MediaStorage, grace_seconds: float
) -> SweepResult:
    temporary = await asyncio.to_thread(_remove_stale_temporary, storage, grace_seconds)
    candidates = await asyncio.to_thread(lambda: list(storage.stale_content(grace_seconds)))
    content = 0
    for first in range(0, len(candidates), _BATCH):
        batch = candidates[first : first + _BATCH]
        async with sessionmaker() as session, session.begin():
            named = await repository.referenced(session, sha256s=batch)
        for sha256 in batch:
            if sha256 in named:
                continue
            async with sessionmaker() as session:
                if await remove_if_unreferenced(session=session, storage=storage, sha256=sha256):
                    content += 1
    return SweepResult(temporary_files=temporary, content_files=content)


async def sweep_media(
    *, sessionmaker: async_sessionmaker[AsyncSession], settings: InventorySettings
) -> None:
    """One run of the worker's media sweep job: ``sweep_media_once``, logged."""
    result = await sweep_media_once(
        sessionmaker=sessionmaker,
        storage=MediaStorage(settings.media_root),
        grace_seconds=settings.media_sweep_grace_seconds,
    )
    if result.temporary_files or result.content_files:
        logger.info(
            "media sweep removed %d temporary and %d unreferenced files",
            result.temporary_files,
            result.content_files,
        )
