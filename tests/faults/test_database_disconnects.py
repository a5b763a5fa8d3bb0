"""Every connection of the platform's database terminated, several times, under load: the
pools reconnect, consumers redeliver, clients retry with their keys, and the books balance."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.faults.conftest import assert_books_balance, assert_each_order_placed_once, books_of
from tests.harness.load import OrderStream
from tests.harness.platform import Platform

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TERMINATIONS = 3

TERMINATE = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()
"""


async def test_terminated_database_connections_under_load_lose_and_repeat_nothing(
    platform: Platform, stream: OrderStream, db: asyncpg.Connection
) -> None:
    await stream.place(4)
    load = asyncio.create_task(stream.place(20, pause=0.1))
    terminated = 0
    try:
        for _ in range(TERMINATIONS):
            await asyncio.sleep(0.7)
            terminated += await db.fetchval(TERMINATE, platform.database)
    finally:
        await load
    assert terminated > 0

    statuses = await stream.settled()
    assert "confirmed" in statuses
    await assert_each_order_placed_once(db, stream)
    assert_books_balance(await books_of(platform))
