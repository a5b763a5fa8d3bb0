"""Broker users (infra/rabbitmq/definitions.json): each service may publish only its own
routing keys and declare only its own queues, and the real broker enforces it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused
from pydantic import SecretStr

from orders.config import OrdersSettings
from shared.contracts.base import all_contracts
from shared.contracts.money import Money
from shared.contracts.payments import PaymentSucceeded
from shared.messaging import Broker, Envelope
from shared.messaging.broker import OutgoingMessage
from shared.messaging.dlq import count_messages, replay
from shared.messaging.envelope import owner_of
from shared.messaging.reception import REFUSED_ROUTING_KEY_HEADER
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    REFUSED_EXCHANGE,
    dead_letter_exchange_name,
    declare_queue,
    delete_topology,
    dlq_name,
    events_exchange_name,
    refused_queue_name,
)
from shared.settings import BaseServiceSettings
from tests.services import ROOT

DEFINITIONS: dict[str, Any] = json.loads((ROOT / "infra/rabbitmq/definitions.json").read_text())
SERVICES = ("inventory", "orders", "payments")
EVENT_TYPES = sorted({event_type for event_type, _, _ in all_contracts()})


def _permissions(user: str) -> dict[str, str]:
    return next(p for p in DEFINITIONS["permissions"] if p["user"] == user)


def _topic_permissions(user: str) -> dict[str, str]:
    return next(p for p in DEFINITIONS["topic_permissions"] if p["user"] == user)


def _queues() -> dict[str, set[str]]:
    """Every consuming queue of each service, its DLQ and its refused queue (without a
    namespace)."""
    from inventory.handlers import RESERVATIONS_CONSUMER, STOCK_ALERTS_CONSUMER
    from orders.handlers import CATALOG_CONSUMER, SAGA_CONSUMER
    from payments.handlers import CONSUMER_NAME

    by_service = {
        "inventory": [RESERVATIONS_CONSUMER, STOCK_ALERTS_CONSUMER],
        "orders": [SAGA_CONSUMER, CATALOG_CONSUMER],
        "payments": [CONSUMER_NAME],
    }
    return {
        service: {
            queue for name in names for queue in (name, dlq_name(name), refused_queue_name(name))
        }
        for service, names in by_service.items()
    }


def test_there_is_one_broker_user_per_service_and_none_else() -> None:
    assert sorted(p["user"] for p in DEFINITIONS["permissions"]) == list(SERVICES)
    assert sorted(p["user"] for p in DEFINITIONS["topic_permissions"]) == list(SERVICES)
    assert "users" not in DEFINITIONS  # created from the environment (start.sh), never here


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_publish_exactly_the_event_types_it_owns(service: str) -> None:
    topic = _topic_permissions(service)
    assert topic["exchange"] == EVENTS_EXCHANGE
    own = {event_type for event_type in EVENT_TYPES if owner_of(event_type) == service}
    assert own
    assert {t for t in EVENT_TYPES if re.search(topic["write"], t)} == own


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_declare_its_own_queues_and_the_shared_exchanges_only(service: str) -> None:
    queues = _queues()
    rules = _permissions(service)
    for kind in ("configure", "write", "read"):
        allowed = re.compile(rules[kind])
        for name in [*queues[service], EVENTS_EXCHANGE, DEAD_LETTER_EXCHANGE, REFUSED_EXCHANGE]:
            assert allowed.search(name), f"{service} {kind} {name}"
        for other in SERVICES:
            if other != service:
                assert not any(allowed.search(name) for name in queues[other]), (kind, other)
        # The default exchange puts a message straight into any queue, past topic permissions.
        assert not allowed.search("amq.default"), kind


# -- the real broker ---------------------------------------------------------------------------


def _rabbitmqctl(*arguments: str, password: str | None = None) -> None:
    # The CLI talks to the broker's node over Erlang distribution, which on a loaded machine
    # has failed a call now and then: a failed call is tried again, and its output shown.
    for attempt in range(3):
        ran = subprocess.run(
            ["rabbitmqctl", "-q", *arguments],
            input=password.encode() if password is not None else None,
            capture_output=True,
            timeout=60,
        )
        if ran.returncode == 0:
            return
        if attempt < 2:
            time.sleep(1)
    raise AssertionError(
        f"rabbitmqctl {arguments[0]} exited {ran.returncode}: {ran.stdout!r} {ran.stderr!r}"
    )


@pytest.fixture
def namespace() -> str:
    return f"{os.environ['COMMERCE_BROKER_NAMESPACE']}.permissions.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def orders_user(namespace: str) -> Iterator[str]:
    """A temporary broker user with the orders user's permissions of definitions.json, its
    resource names under this test's namespace; the broker URL to connect as it."""
    user, password = f"test-orders-{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(16)
    rules, topic = _permissions("orders"), _topic_permissions("orders")
    prefix = re.escape(namespace) + r"\."

    def namespaced(pattern: str) -> str:
        assert pattern.startswith("^(")
        return f"^{prefix}({pattern[2:]}"

    _rabbitmqctl("add_user", user, password=password)
    try:
        _rabbitmqctl(
            "set_permissions",
            *("-p", "/", user),
            *(namespaced(rules[kind]) for kind in ("configure", "write", "read")),
        )
        _rabbitmqctl(
            "set_topic_permissions",
            *("-p", "/", user),
            f"{namespace}.{topic['exchange']}",
            topic["write"],
            topic["read"],
        )
        yield f"amqp://{user}:{password}@127.0.0.1:5672/"
    finally:
        _rabbitmqctl("delete_user", user)


@pytest.fixture
async def admin(namespace: str) -> AsyncIterator[Broker]:
    """The test's own (unrestricted) connection; removes the namespace's topology at the end."""
    broker = Broker(OrdersSettings(broker_namespace=namespace))
    await broker.connect()
    try:
        yield broker
    finally:
        channel = await broker.channel()
        await delete_topology(
            channel,
            settings=broker.settings,
            purposes=["probe", "orders.saga", "payments.requests"],
        )
        await broker.close()


def _message(event_type: str) -> OutgoingMessage:
    event_id = str(uuid.uuid4())
    return OutgoingMessage(event_id, event_type, b'{"not": "read by anyone"}')


async def test_broker_refuses_a_service_publishing_another_services_routing_key(
    orders_user: str, admin: Broker, namespace: str
) -> None:
    settings = admin.settings
    probe_channel = await admin.channel()
    probe = await declare_queue(
        probe_channel,
        settings=settings,
        purpose="probe",
        event_types=["orders.order_created", "payments.payment_succeeded"],
    )
    orders = Broker(OrdersSettings(broker_namespace=namespace, broker_url=SecretStr(orders_user)))
    await orders.connect()  # declares the events and dead-letter exchanges: allowed
    try:
        publisher = await orders.publisher()
        await publisher.publish(_message("orders.order_created"))  # its own: confirmed

        with pytest.raises(ChannelAccessRefused) as refused:
            await publisher.publish(_message("payments.payment_succeeded"))
        assert "payments.payment_succeeded" in str(refused.value)

        # Its own queue (with its DLQ, its refused queue and their exchanges) may be declared;
        # another's not.
        own = await orders.channel()
        await declare_queue(
            own, settings=settings, purpose="orders.saga", event_types=["payments.payment_failed"]
        )
        foreign = await orders.channel()
        with pytest.raises(ChannelAccessRefused):
            await declare_queue(
                foreign,
                settings=settings,
                purpose="payments.requests",
                event_types=["orders.payment_requested"],
            )
    finally:
        await orders.close()

    assert await count_messages(probe_channel, probe.queue.name) == 1
    received = await probe.queue.get(no_ack=True, fail=True)
    assert isinstance(received, aio_pika.abc.AbstractIncomingMessage)
    assert received.routing_key == "orders.order_created"


def _payment_succeeded() -> Envelope:
    return Envelope.new(
        PaymentSucceeded(
            payment_id=uuid.uuid4(),
            order_id=uuid.uuid4(),
            amount=Money(amount=1999, currency="USD"),
        )
    )


async def test_no_service_can_publish_to_the_dead_letter_exchange(
    orders_user: str, admin: Broker, namespace: str
) -> None:
    """Only the broker puts messages into a DLQ: the dead-letter exchange is internal, so no
    client may publish to it, not even an operator, whatever x-death it writes; orders still
    declares its queue that dead-letters into it, and what it rejects is dead-lettered there."""
    settings = admin.settings
    orders = Broker(OrdersSettings(broker_namespace=namespace, broker_url=SecretStr(orders_user)))
    await orders.connect()
    try:
        saga = await declare_queue(
            await orders.channel(),
            settings=settings,
            purpose="orders.saga",
            event_types=[PaymentSucceeded.event_type],
        )
        forged = _payment_succeeded()
        consistent = _death(forged, queue=saga.queue.name, settings=settings)
        for publisher in (orders, admin):
            channel = await publisher.channel()
            dead_letter = await channel.get_exchange(
                dead_letter_exchange_name(settings), ensure=False
            )
            with pytest.raises(ChannelAccessRefused, match="internal exchange"):
                await dead_letter.publish(
                    aio_pika.Message(forged.to_bytes(), headers=consistent),
                    routing_key=saga.queue.name,
                )

        genuine = _payment_succeeded()
        events = await (await admin.channel()).get_exchange(
            events_exchange_name(settings), ensure=False
        )
        await events.publish(
            aio_pika.Message(genuine.to_bytes(), message_id=str(genuine.id)),
            routing_key=genuine.type,
        )
        delivered = await saga.queue.get(no_ack=False, fail=True)  # as orders
        assert isinstance(delivered, aio_pika.abc.AbstractIncomingMessage)
        await delivered.reject(requeue=False)
    finally:
        await orders.close()

    channel = await admin.channel()
    dlq = await channel.declare_queue(saga.dead_letter_queue.name, passive=True)
    letter = await _next_message(dlq)  # the broker dead-letters in the background
    assert letter.message_id == str(genuine.id)
    assert await count_messages(channel, dlq.name) == 0


async def _next_message(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message of ``queue`` (taken), waited for."""
    async with asyncio.timeout(10):
        while True:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                return message
            await asyncio.sleep(0.05)


def _death(event: Envelope, *, queue: str, settings: BaseServiceSettings) -> dict[str, Any]:
    """The x-death RabbitMQ writes when ``queue`` dead-letters ``event`` it received under its
    type: consistent in every field a replay checks."""
    return {
        "x-death": [
            {
                "count": 1,
                "reason": "rejected",
                "queue": queue,
                "time": datetime.now(UTC),
                "exchange": events_exchange_name(settings),
                "routing-keys": [event.type],
            }
        ]
    }


async def test_while_the_dead_letter_exchange_is_left_not_internal_a_forgery_stays_in_the_dlq(
    orders_user: str, admin: Broker, namespace: str
) -> None:
    """A broker upgraded from an earlier version holds the exchange not internal until an
    operator deletes it (docs/deployment.md); meanwhile orders can put a payments body into
    its saga's DLQ with the headers a replay used to take its routing key from, and the
    replay keeps it there and replays the genuine dead letter beside it."""
    settings = admin.settings
    channel = await admin.channel()
    legacy = dead_letter_exchange_name(settings)
    await channel.exchange_delete(legacy)  # declared internal by the admin's connect
    await channel.declare_exchange(legacy, aio_pika.ExchangeType.DIRECT, durable=True)
    saga = await declare_queue(
        channel, settings=settings, purpose="orders.saga", event_types=[PaymentSucceeded.event_type]
    )
    dlq = saga.dead_letter_queue.name

    # Genuine: published under its type (as payments), rejected, dead-lettered by the broker.
    genuine = _payment_succeeded()
    events = await channel.get_exchange(events_exchange_name(settings), ensure=False)
    await events.publish(
        aio_pika.Message(genuine.to_bytes(), message_id=str(genuine.id)),
        routing_key=genuine.type,
    )
    delivered = await saga.queue.get(no_ack=False, fail=True)
    assert isinstance(delivered, aio_pika.abc.AbstractIncomingMessage)
    await delivered.reject(requeue=False)

    forged = _payment_succeeded()
    orders = Broker(OrdersSettings(broker_namespace=namespace, broker_url=SecretStr(orders_user)))
    await orders.connect()
    try:
        own = await orders.channel()
        dead_letter = await own.get_exchange(legacy, ensure=False)
        await dead_letter.publish(  # confirmed: the broker lets orders do this
            aio_pika.Message(
                forged.to_bytes(),
                headers={REFUSED_ROUTING_KEY_HEADER: forged.type},
                message_id=str(forged.id),
            ),
            routing_key=saga.queue.name,
        )
    finally:
        await orders.close()

    async with asyncio.timeout(10):  # the broker dead-letters in the background
        while True:
            if await count_messages(channel, dlq) == 2:
                break
            await asyncio.sleep(0.05)
    assert await replay(admin, queue=dlq) == 1
    replayed = await saga.queue.get(no_ack=True, fail=True)
    assert isinstance(replayed, aio_pika.abc.AbstractIncomingMessage)
    assert (replayed.message_id, replayed.routing_key) == (str(genuine.id), genuine.type)
    kept = await channel.declare_queue(dlq, passive=True)
    left = await _next_message(kept)  # back in the DLQ once the replay's channel closed
    assert left.message_id == str(forged.id)
    assert await count_messages(channel, dlq) == 0
