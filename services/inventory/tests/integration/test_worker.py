"""The worker end to end over the real broker: events in, stock moved once, events out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import orjson
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory import worker
from inventory.catalog.schemas import MoneyIn, ProductCreate
from inventory.catalog.service import create_product
from inventory.config import InventorySettings
from inventory.events import ProcessedEvent
from inventory.handlers import RESERVATIONS_CONSUMER, STOCK_ALERTS_CONSUMER
from inventory.stock.models import StockItem
from shared.contracts.money import Money
from shared.contracts.orders import OrderCancelled, OrderCreated, OrderedQuantity, OrderLine
from shared.messaging import Broker, Envelope
from shared.messaging.broker import OutgoingMessage
from shared.messaging.topology import dlq_name, events_exchange_name, queue_name, refused_queue_name

pytestmark = pytest.mark.slow
DEADLINE_SECONDS = 30  # a generous bound on waiting, not a speed requirement


class Probe:
    """A private queue bound to every inventory event: what other services would receive."""

    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue
        self.received: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            self.received.append(orjson.loads(message.body))
            self._arrived.set()

    def matching(self, event_type: str, order_id: uuid.UUID) -> list[dict[str, Any]]:
        return [
            event
            for event in self.received
            if event["type"] == event_type and event["data"].get("order_id") == str(order_id)
        ]

    async def wait_for(self, event_type: str, order_id: uuid.UUID) -> list[dict[str, Any]]:
        async with asyncio.timeout(DEADLINE_SECONDS):
            while not self.matching(event_type, order_id):
                self._arrived.clear()
                await self._arrived.wait()
        return self.matching(event_type, order_id)


@pytest.fixture
async def broker(settings: InventorySettings) -> AsyncIterator[Broker]:
    broker = Broker(settings)
    await broker.connect()
    try:
        yield broker
    finally:
        channel = await broker.channel()
        for purpose in (RESERVATIONS_CONSUMER, STOCK_ALERTS_CONSUMER):
            name = queue_name(settings, purpose)
            await channel.queue_delete(name)
            await channel.queue_delete(dlq_name(name))
            await channel.queue_delete(refused_queue_name(name))
        await broker.close()


@pytest.fixture
async def probe(broker: Broker, settings: InventorySettings) -> Probe:
    channel = await broker.channel()
    exchange = await channel.get_exchange(events_exchange_name(settings))
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="inventory.#")
    probe = Probe(queue)
    await queue.consume(probe.on_message)
    return probe


@pytest.fixture
async def running_worker(settings: InventorySettings, broker: Broker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(settings, stop=stop, install_signal_handlers=False))
    channel = await broker.channel()
    try:
        # Publishing is mandatory: wait until the worker has declared and bound its queue.
        async with asyncio.timeout(DEADLINE_SECONDS):
            while True:
                try:
                    await channel.declare_queue(
                        queue_name(settings, RESERVATIONS_CONSUMER), passive=True
                    )
                    break
                except aio_pika.exceptions.ChannelClosed:
                    channel = await broker.channel()
                    await asyncio.sleep(0.1)
        yield
    finally:
        stop.set()
        await task


async def wait_processed(sessionmaker: async_sessionmaker[AsyncSession], event: Envelope) -> None:
    """Until the worker has committed its handling of ``event`` (its inbox row exists)."""
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            async with sessionmaker() as session:
                found = await session.scalar(
                    select(ProcessedEvent.event_id).where(ProcessedEvent.event_id == event.id)
                )
            if found is not None:
                return
            await asyncio.sleep(0.05)


async def publish(broker: Broker, event: Envelope) -> None:
    publisher = await broker.publisher()
    await publisher.publish(OutgoingMessage(str(event.id), event.type, event.to_bytes()))


async def test_duplicated_and_reordered_order_events_apply_once(
    settings: InventorySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    sku: str,
    broker: Broker,
    probe: Probe,
    running_worker: None,
) -> None:
    async with sessionmaker() as session:
        data = ProductCreate(
            sku=sku, name=sku, price=MoneyIn(amount=250, currency="USD"), initial_stock=10
        )
        await create_product(session=session, settings=settings, data=data, actor="test")
    price = Money(amount=250, currency="USD")

    kept, overtaken = uuid.uuid4(), uuid.uuid4()
    created = Envelope.new(
        OrderCreated(
            order_id=kept,
            user_id=uuid.uuid4(),
            items=[OrderLine(sku=sku, quantity=3, unit_price=price)],
            total=Money(amount=750, currency="USD"),
        )
    )
    for _ in range(3):  # the same event delivered three times
        await publish(broker, created)
    reserved = await probe.wait_for("inventory.stock_reserved", kept)

    # A cancellation that overtakes its order's creation: the creation must reserve nothing.
    cancelled = Envelope.new(
        OrderCancelled(
            order_id=overtaken, reason="customer", items=[OrderedQuantity(sku=sku, quantity=2)]
        )
    )
    await publish(broker, cancelled)
    await wait_processed(sessionmaker, cancelled)
    late = Envelope.new(
        OrderCreated(
            order_id=overtaken,
            user_id=uuid.uuid4(),
            items=[OrderLine(sku=sku, quantity=2, unit_price=price)],
            total=Money(amount=500, currency="USD"),
        )
    )
    await publish(broker, late)
    await wait_processed(sessionmaker, late)

    assert len(reserved) == 1
    assert reserved[0]["causation_id"] == str(created.id)
    assert reserved[0]["data"]["items"] == [{"sku": sku, "quantity": 3}]
    assert probe.matching("inventory.stock_reserved", overtaken) == []
    assert probe.matching("inventory.stock_reservation_failed", overtaken) == []
    async with sessionmaker() as session:
        item = (await session.execute(select(StockItem).where(StockItem.sku == sku))).scalar_one()
    assert (item.on_hand, item.reserved) == (10, 3)


async def test_worker_stops_cleanly_when_asked(
    settings: InventorySettings, broker: Broker, running_worker: None
) -> None:
    """The fixture's teardown sets stop and awaits the worker: it must return."""
    assert broker.is_connected()
