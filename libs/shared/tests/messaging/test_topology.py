"""The dead-letter exchange on the real broker: internal, still used (with a warning) where an
earlier version left it not internal, and declared again when a broker lost it."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import uuid
from typing import ClassVar

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.inventory import StockLow
from shared.messaging import Broker, Envelope
from shared.messaging.dlq import count_messages
from shared.messaging.topology import dead_letter_exchange_name, dlq_name, events_exchange_name

from .conftest import EVENT_TYPE, Harness, MessagingTestSettings, wait_until

TOPOLOGY_LOGGER = "shared.messaging.topology"


async def _failing(session: AsyncSession, event: Envelope) -> None:
    raise RuntimeError("dead-letter it after the delivery limit")


async def _publish_stock_low(channel: aio_pika.abc.AbstractChannel, harness: Harness) -> None:
    event = Envelope.new(StockLow(sku="SKU-DEAD", available=1, reorder_point=5))
    events = await channel.get_exchange(events_exchange_name(harness.settings), ensure=False)
    await events.publish(
        aio_pika.Message(event.to_bytes(), message_id=str(event.id)), routing_key=EVENT_TYPE
    )


async def _is_internal(broker: Broker) -> bool:
    """Whether the broker refuses a publish to the namespace's dead-letter exchange (the
    operator's user included) as one to an internal exchange."""
    channel = await broker.channel()
    dead_letter = await channel.get_exchange(
        dead_letter_exchange_name(broker.settings), ensure=False
    )
    try:
        await dead_letter.publish(aio_pika.Message(b"{}"), routing_key="nowhere")
    except ChannelAccessRefused as exc:
        return "internal exchange" in str(exc)
    return False


async def _count(channel: aio_pika.abc.AbstractChannel, queue: str, expected: int) -> bool:
    return await count_messages(channel, queue) == expected


async def test_an_exchange_left_not_internal_is_used_with_one_warning_until_deleted(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    name = "upgraded"
    legacy = dead_letter_exchange_name(harness.settings)
    url = harness.settings.broker_url.get_secret_value()
    async with await aio_pika.connect(url) as earlier:  # as an earlier version declared it
        channel = await earlier.channel()
        await channel.declare_exchange(legacy, aio_pika.ExchangeType.DIRECT, durable=True)

    with caplog.at_level(logging.WARNING, logger=TOPOLOGY_LOGGER):
        consumer = await harness.consumer(name, _failing)
        admin = await harness.broker()  # each declares it again: still one warning
    warnings = [r.getMessage() for r in caplog.records if r.name == TOPOLOGY_LOGGER]
    assert len(warnings) == 1
    assert f"{legacy} was declared not internal" in warnings[0]
    assert f"delete {legacy} (queues and their messages stay)" in warnings[0]
    assert not await _is_internal(admin)

    # Dead-lettering goes on through it meanwhile.
    channel = await admin.channel()
    dlq = dlq_name(consumer.queue.name)
    await _publish_stock_low(channel, harness)
    await wait_until(lambda: _count(channel, dlq, 1), what="dead-lettered through it")

    # The operator's step: workers stopped, the exchange deleted, workers started again.
    await consumer.stop(drain_seconds=5)
    await channel.exchange_delete(legacy)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=TOPOLOGY_LOGGER):
        restarted = await harness.consumer(name, _failing)
    assert not [r for r in caplog.records if r.name == TOPOLOGY_LOGGER]
    assert await _is_internal(admin)
    assert await count_messages(channel, dlq) == 1  # the DLQ and its letter stayed
    await _publish_stock_low(channel, harness)
    await wait_until(lambda: _count(channel, dlq, 2), what="the DLQ bound again")
    assert restarted.queue.name == consumer.queue.name


class _OwnConnectionName(MessagingTestSettings):
    # The broker names a connection after its service: unique, so that only this one is cut.
    service_name: ClassVar[str] = f"messaging-test-{uuid.uuid4().hex[:12]}"


def _close_connection(connection_name: str) -> None:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "--no-table-headers", "pid", "client_properties"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    [pid] = [line.split("\t")[0] for line in listed.splitlines() if connection_name in line]
    subprocess.run(
        ["rabbitmqctl", "-q", "close_connection", pid, "test: the broker lost its exchanges"],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def test_a_broker_that_lost_the_exchange_gets_it_back_internal_on_reconnection(
    harness: Harness,
) -> None:
    settings = _OwnConnectionName(**harness.settings.model_dump())
    broker = Broker(settings)
    await broker.connect()
    harness.brokers.append(broker)
    consumer = await harness.consumer("lost-exchange", _failing, broker=broker)

    # As on a new broker node: no dead-letter exchange, no DLQ binding, then the connection
    # is cut and restored. aio-pika restores no internal exchange by itself.
    admin = await harness.broker()
    channel = await admin.channel()
    await channel.exchange_delete(dead_letter_exchange_name(settings))
    await asyncio.to_thread(_close_connection, settings.service_name)

    # Handled (and failed) only once the consumer's connection is restored, and dead-lettered
    # only through a dead-letter exchange declared and bound again.
    dlq = dlq_name(consumer.queue.name)
    await _publish_stock_low(channel, harness)
    await wait_until(lambda: _count(channel, dlq, 1), what="dead-lettered after the restore")
    assert await _is_internal(admin)
