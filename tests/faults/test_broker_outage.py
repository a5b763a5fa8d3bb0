"""RabbitMQ stopped and started while orders stream in: the outboxes hold the events, the
robust connections come back, and every order completes once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.faults.conftest import assert_books_balance, assert_each_order_placed_once, books_of
from tests.harness import broker
from tests.harness.load import OrderStream
from tests.harness.platform import Platform

pytestmark = [pytest.mark.faults, pytest.mark.slow]


async def test_the_broker_stopped_and_started_mid_stream_loses_no_order(
    platform: Platform, stream: OrderStream, db: asyncpg.Connection
) -> None:
    await stream.place(8)
    try:
        await asyncio.to_thread(broker.stop_app)
        await stream.place(8)  # accepted while the broker is away: written to the outboxes
    finally:
        await asyncio.to_thread(broker.start_app)  # waits until RabbitMQ answers again
    await stream.place(8)

    statuses = await stream.settled()
    assert statuses[8:16].count("confirmed") > 0  # orders of the outage went through too
    await assert_each_order_placed_once(db, stream)
    assert_books_balance(await books_of(platform))
