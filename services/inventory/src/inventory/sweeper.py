"""The reservation sweep: releases reservations past their TTL, a periodic job of every worker.

Several workers may sweep at once: ``expire_due_reservations`` claims rows with
``FOR UPDATE SKIP LOCKED``, so each expired reservation is released by exactly one.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.config import InventorySettings
from inventory.stock.releases import expire_due_reservations

logger = logging.getLogger(__name__)


async def sweep_once(
    *, sessionmaker: async_sessionmaker[AsyncSession], settings: InventorySettings
) -> int:
    """Release every reservation due now, batch by batch; how many were released."""
    total = 0
    while True:
        async with sessionmaker() as session:
            expired = await expire_due_reservations(
                session=session, batch_size=settings.sweeper_batch_size
            )
        total += len(expired)
        if len(expired) < settings.sweeper_batch_size:
            return total


async def sweep(
    *, sessionmaker: async_sessionmaker[AsyncSession], settings: InventorySettings
) -> None:
    """One run of the worker's reservation sweep job: ``sweep_once``, logged."""
    if released := await sweep_once(sessionmaker=sessionmaker, settings=settings):
        logger.info("released %d expired reservations", released)
