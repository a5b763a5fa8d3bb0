"""The worker end to end on the real broker: a test plays inventory and payments."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from aio_pika.abc import AbstractQueue
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orders import worker
from orders.config import OrdersSettings
from orders.handlers import consumers
from services.orders.tests.conftest import OutboxReader, Place, User, event, order_body
from shared.contracts import Money, orders
from shared.contracts.inventory import ProductUpserted, ReservedLine, StockReserved
from shared.contracts.payments import PaymentSucceeded
from shared.messaging import Broker, Envelope, declare_queue
from shared.messaging.broker import OutgoingMessage
from shared.messaging.topology import dlq_name, queue_name, refused_queue_name

pytestmark = [pytest.mark.usefixtures("database"), pytest.mark.slow]

OBSERVER = "orders-tests.observer"
PATIENCE_SECONDS = 30.0  # a bound on waiting for liveness, not a speed requirement


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(PATIENCE_SECONDS):
        while True:  # polling: the database offers no event to wait on
            if await check():
                return
            await asyncio.sleep(0.05)


async def next_event(queue: AbstractQueue, event_type: str, order_id: uuid.UUID) -> dict[str, Any]:
    """The next ``event_type`` for ``order_id`` the observer receives (earlier tests' rows,
    published by this relay too, are skipped)."""
    async with asyncio.timeout(PATIENCE_SECONDS):
        while True:
            message = await queue.get(fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.ack()
            body: dict[str, Any] = orjson.loads(message.body)
            if body["type"] == event_type and body["data"]["order_id"] == str(order_id):
                return body


async def test_the_worker_runs_the_saga_over_the_broker(
    settings: OrdersSettings,
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    place: Place,
    customer: User,
    outbox_events: OutboxReader,
) -> None:
    broker = Broker(settings)
    await broker.connect()
    channel = await broker.channel()
    purposes = [consumer.name for consumer in consumers(settings)] + [OBSERVER]
    # Declared here too (idempotent) so nothing published below can be unroutable.
    for consumer in consumers(settings):
        await declare_queue(
            channel, settings=settings, purpose=consumer.name, event_types=consumer.handlers
        )
    observed = await declare_queue(
        channel,
        settings=settings,
        purpose=OBSERVER,
        event_types=[
            orders.OrderCreated.event_type,
            orders.PaymentRequested.event_type,
            orders.OrderConfirmed.event_type,
        ],
    )
    publisher = await broker.publisher()

    async def publish(envelope: Envelope) -> None:
        await publisher.publish(
            OutgoingMessage(str(envelope.id), envelope.type, envelope.to_bytes())
        )

    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(settings, stop=stop, install_signal_handlers=False))
    try:
        sku = f"SKU-{uuid.uuid4().hex[:12]}"
        price = Money(amount=4200, currency="USD")
        await publish(event(ProductUpserted(sku=sku, name="Lamp", price=price, active=True)))

        async def priced() -> bool:
            async with engine.connect() as connection:
                found = await connection.scalar(
                    text("SELECT count(*) FROM orders.catalog_prices WHERE sku = :sku"),
                    {"sku": sku},
                )
            return bool(found == 1)

        await eventually(priced)

        response = await place(customer, order_body((sku, 1)))
        assert response.status_code == 202
        order_id = uuid.UUID(response.json()["id"])
        created = await next_event(observed.queue, "orders.order_created", order_id)
        assert created["data"]["total"] == {"amount": 4200, "currency": "USD"}

        reserved = event(
            StockReserved(order_id=order_id, items=[ReservedLine(sku=sku, quantity=1)])
        )
        await publish(reserved)
        await publish(reserved)  # a redelivered copy
        requested = await next_event(observed.queue, "orders.payment_requested", order_id)
        assert requested["causation_id"] == str(reserved.id)
        assert requested["data"]["amount"] == {"amount": 4200, "currency": "USD"}

        paid = PaymentSucceeded(payment_id=uuid.uuid4(), order_id=order_id, amount=price)
        await publish(event(paid))
        confirmed = await next_event(observed.queue, "orders.order_confirmed", order_id)
        assert confirmed["data"]["items"] == [{"sku": sku, "quantity": 1}]

        order = (await client.get(f"/api/v1/orders/{order_id}", headers=customer.headers)).json()
        assert [h["status"] for h in order["status_history"]] == [
            "pending",
            "awaiting_payment",
            "confirmed",
        ]
        assert [kind for kind, _ in await outbox_events(order_id)] == [
            "orders.order_created",
            "orders.payment_requested",
            "orders.order_confirmed",
        ]
    finally:
        stop.set()
        await running
        for purpose in purposes:
            name = queue_name(settings, purpose)
            await channel.queue_delete(name)
            await channel.queue_delete(dlq_name(name))
            await channel.queue_delete(refused_queue_name(name))
        await broker.close()
