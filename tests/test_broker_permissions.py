"""Broker users (infra/rabbitmq/definitions.json): each service may publish only its own
routing keys and declare only its own queues, and the real broker enforces it."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused
from pydantic import SecretStr

from orders.config import OrdersSettings
from shared.contracts.base import all_contracts
from shared.messaging import Broker
from shared.messaging.broker import OutgoingMessage
from shared.messaging.dlq import count_messages
from shared.messaging.envelope import owner_of
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    declare_queue,
    delete_topology,
    dlq_name,
)
from tests.services import ROOT

DEFINITIONS: dict[str, Any] = json.loads((ROOT / "infra/rabbitmq/definitions.json").read_text())
SERVICES = ("inventory", "orders", "payments")
EVENT_TYPES = sorted({event_type for event_type, _, _ in all_contracts()})


def _permissions(user: str) -> dict[str, str]:
    return next(p for p in DEFINITIONS["permissions"] if p["user"] == user)


def _topic_permissions(user: str) -> dict[str, str]:
    return next(p for p in DEFINITIONS["topic_permissions"] if p["user"] == user)


def _queues() -> dict[str, set[str]]:
    """Every consuming queue of each service and its DLQ (without a namespace)."""
    from inventory.handlers import RESERVATIONS_CONSUMER, STOCK_ALERTS_CONSUMER
    from orders.handlers import CATALOG_CONSUMER, SAGA_CONSUMER
    from payments.handlers import CONSUMER_NAME

    by_service = {
        "inventory": [RESERVATIONS_CONSUMER, STOCK_ALERTS_CONSUMER],
        "orders": [SAGA_CONSUMER, CATALOG_CONSUMER],
        "payments": [CONSUMER_NAME],
    }
    return {
        service: {queue for name in names for queue in (name, dlq_name(name))}
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
def test_a_service_may_declare_its_own_queues_and_the_two_exchanges_only(service: str) -> None:
    queues = _queues()
    rules = _permissions(service)
    for kind in ("configure", "write", "read"):
        allowed = re.compile(rules[kind])
        for name in [*queues[service], EVENTS_EXCHANGE, DEAD_LETTER_EXCHANGE]:
            assert allowed.search(name), f"{service} {kind} {name}"
        for other in SERVICES:
            if other != service:
                assert not any(allowed.search(name) for name in queues[other]), (kind, other)
        # The default exchange puts a message straight into any queue, past topic permissions.
        assert not allowed.search("amq.default"), kind


# -- the real broker ---------------------------------------------------------------------------


def _rabbitmqctl(*arguments: str, password: str | None = None) -> None:
    subprocess.run(
        ["rabbitmqctl", "-q", *arguments],
        input=password.encode() if password is not None else None,
        check=True,
        capture_output=True,
        timeout=60,
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
    await orders.connect()  # declares both exchanges: allowed
    try:
        publisher = await orders.publisher()
        await publisher.publish(_message("orders.order_created"))  # its own: confirmed

        with pytest.raises(ChannelAccessRefused) as refused:
            await publisher.publish(_message("payments.payment_succeeded"))
        assert "payments.payment_succeeded" in str(refused.value)

        # Its own queue (with its DLQ and dead-letter exchange) may be declared; another's not.
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
