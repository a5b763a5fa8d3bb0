"""A worker killed with SIGKILL in the middle of the saga, then started again: no order,
payment or unit of stock is lost or applied twice."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.faults.conftest import assert_books_balance, assert_each_order_placed_once, books_of
from tests.harness.load import OrderStream
from tests.harness.platform import WORKERS, Platform

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@pytest.mark.parametrize("worker", WORKERS)
async def test_a_worker_killed_mid_saga_and_restarted_loses_nothing_and_repeats_nothing(
    platform: Platform, stream: OrderStream, worker: str, db: asyncpg.Connection
) -> None:
    process = platform.processes[worker]
    await stream.place(8)
    try:
        process.kill()  # in the middle of the stream: its messages are unacked
        await stream.place(8)  # the shop keeps taking orders meanwhile
    finally:
        if not process.running:
            await asyncio.to_thread(platform.start_process, worker)
    await stream.place(8)

    statuses = await stream.settled()
    assert "confirmed" in statuses
    assert set(statuses) <= {"confirmed", "cancelled", "rejected"}
    await assert_each_order_placed_once(db, stream)
    assert_books_balance(await books_of(platform))
