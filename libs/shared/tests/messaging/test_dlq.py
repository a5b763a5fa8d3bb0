"""DLQ replay: a dead letter goes back only under its own type, from its owner, as the broker
dead-lettered it; what anyone else put into the DLQ stays there, and a refused queue is never
replayed.

Only the broker puts messages into a DLQ (the dead-letter exchange is internal), but a broker
upgraded from an earlier version may hold that exchange not internal, open to every service
with headers of its choosing (docs/deployment.md), so the replay, which publishes as an
operator, re-checks what the consumer's broker user vouched for.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.money import Money
from shared.contracts.orders import OrderCreated
from shared.contracts.payments import PaymentSucceeded
from shared.messaging import Envelope, RunningConsumer
from shared.messaging.dlq import (
    ReplayRefusedError,
    count_messages,
    replay,
    replay_routing_key,
    resolve_dlq,
)
from shared.messaging.reception import REFUSAL_REASON_HEADER, REFUSED_ROUTING_KEY_HEADER
from shared.messaging.topology import events_exchange_name, refused_queue_name
from shared.settings import BaseServiceSettings

from .conftest import Effect, Harness, wait_until

PAID = PaymentSucceeded.event_type
SOURCE = "ns.orders.saga"
EVENTS = "ns.commerce.events"


def _payment(*, producer: str | None = None) -> Envelope:
    payload = PaymentSucceeded(
        payment_id=uuid.uuid4(), order_id=uuid.uuid4(), amount=Money(amount=1999, currency="USD")
    )
    return Envelope.new(payload, producer=producer)


def _death(*, queue: str = SOURCE, exchange: str = EVENTS, key: str = PAID) -> dict[str, Any]:
    """An x-death header as RabbitMQ writes it when it dead-letters from ``queue``."""
    return {
        "x-death": [
            {
                "count": 1,
                "reason": "delivery_limit",
                "queue": queue,
                "time": datetime.now(UTC),
                "exchange": exchange,
                "routing-keys": [key],
            }
        ]
    }


def _key(headers: dict[str, Any], body: bytes) -> str:
    return replay_routing_key(headers, body, source_queue=SOURCE, events_exchange=EVENTS)


def test_a_dead_letter_is_replayed_under_its_own_type() -> None:
    assert _key(_death(), _payment().to_bytes()) == PAID
    # Replayed to its source queue before (through the default exchange), then dead again.
    assert _key(_death(exchange="", key=SOURCE), _payment().to_bytes()) == PAID


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        ({REFUSED_ROUTING_KEY_HEADER: PAID}, _payment().to_bytes(), "refused by its consumer"),
        (
            {**_death(), REFUSAL_REASON_HEADER: "anything"},
            _payment().to_bytes(),
            "refused by its consumer",
        ),
        ({}, _payment().to_bytes(), "no x-death"),
        (_death(queue="ns.payments.requests"), _payment().to_bytes(), "died in"),
        (_death(key=OrderCreated.event_type), _payment().to_bytes(), "not under its own type"),
        (_death(exchange="ns.elsewhere"), _payment().to_bytes(), "not under its own type"),
        (_death(), _payment(producer="orders").to_bytes(), "may not produce"),
        (_death(), b"not json", "not JSON"),
    ],
    ids=[
        "refused-key-header",
        "refusal-reason-header",
        "no-death-record",
        "another-queue",
        "another-routing-key",
        "another-exchange",
        "producer-not-owner",
        "not-an-envelope",
    ],
)
def test_a_replay_refuses_what_nothing_vouches_for(
    headers: dict[str, Any], body: bytes, why: str
) -> None:
    with pytest.raises(ReplayRefusedError, match=why):
        _key(headers, body)


@pytest.mark.parametrize(
    ("named", "resolved"),
    [
        ("orders.saga", "ns.orders.saga.dlq"),
        ("ns.orders.saga", "ns.orders.saga.dlq"),
        ("orders.saga.dlq", "ns.orders.saga.dlq"),
        ("ns.orders.saga.refused", "ns.orders.saga.refused"),
        ("orders.saga.refused", "ns.orders.saga.refused"),
    ],
)
def test_the_cli_takes_a_purpose_its_queue_its_dlq_or_its_refused_queue(
    named: str, resolved: str
) -> None:
    settings = BaseServiceSettings(environment="development", broker_namespace="ns")
    assert resolve_dlq(settings, named) == resolved


# -- on the real broker ------------------------------------------------------------------------


async def _payments_consumer(harness: Harness, name: str, failing: set[str]) -> RunningConsumer:
    """A consumer of payment outcomes, as the orders saga is; fails events while in
    ``failing``."""

    async def record(session: AsyncSession, event: Envelope) -> None:
        if str(event.id) in failing:
            raise RuntimeError("the saga cannot take it yet")
        session.add(Effect(event_id=event.id, consumer=name))

    return await harness.consumer(name, handlers={PAID: record})


@pytest.mark.parametrize("to_source_queue", [False, True], ids=["to-exchange", "to-source-queue"])
async def test_refusals_and_forgeries_stay_while_a_genuine_dead_letter_is_replayed(
    harness: Harness, caplog: pytest.LogCaptureFixture, to_source_queue: bool
) -> None:
    name = "replay-provenance"
    genuine = _payment()
    failing = {str(genuine.id)}
    consumer = await _payments_consumer(harness, name, failing)
    broker = await harness.broker()
    channel = await broker.channel()
    source, dlq = consumer.queue.name, consumer.queue.name + ".dlq"
    refused = refused_queue_name(source)

    # Published by payments, failed by the handler until the delivery limit: the broker
    # dead-letters it with its x-death record.
    events = await channel.get_exchange(events_exchange_name(harness.settings), ensure=False)
    await events.publish(
        aio_pika.Message(genuine.to_bytes(), message_id=str(genuine.id), type=PAID),
        routing_key=PAID,
    )
    await wait_until(lambda: _count(channel, dlq, 1), what="the genuine one dead-lettered")

    # A payments body claiming orders as producer: refused, put aside, not dead-lettered.
    claims_orders = _payment(producer="orders")
    await events.publish(
        aio_pika.Message(claims_orders.to_bytes(), message_id=str(claims_orders.id), type=PAID),
        routing_key=PAID,
    )
    await wait_until(lambda: _count(channel, refused, 1), what="the forgery refused")

    # What a service could publish through a dead-letter exchange left not internal, put
    # here by the operator's own user: payments bodies with the headers the replay used to
    # take its routing key or queue from.
    forged_refusal, forged_death = _payment(), _payment()
    elsewhere = f"{harness.settings.broker_namespace}.payments.requests"
    forgeries = [
        (forged_refusal, {REFUSED_ROUTING_KEY_HEADER: PAID}),
        (forged_death, _death(queue=elsewhere)),
    ]
    for forged, headers in forgeries:
        message = aio_pika.Message(
            forged.to_bytes(), headers=headers, message_id=str(forged.id), type=PAID
        )
        await channel.default_exchange.publish(message, routing_key=dlq)
    await wait_until(lambda: _count(channel, dlq, 3), what="the forgeries in the DLQ")

    failing.clear()
    with caplog.at_level(logging.WARNING, logger="shared.messaging.dlq"):
        replayed = await replay(broker, queue=dlq, to_source_queue=to_source_queue)
        with pytest.raises(ReplayRefusedError, match="never replayed"):
            await replay(broker, queue=refused, to_source_queue=to_source_queue)

    assert replayed == 1
    await wait_until(lambda: harness.applied(name, 1), what="the genuine one applied")
    await wait_until(lambda: _count(channel, dlq, 2), what="the forgeries kept in the DLQ")
    assert await count_messages(channel, refused) == 1
    assert await harness.effects(name) == {genuine.id: 1}
    assert [r.getMessage() for r in caplog.records if "kept message" in r.getMessage()] == [
        f"{dlq}: kept message {forged_refusal.id}: "
        "refused by its consumer for its provenance: never replayed",
        f"{dlq}: kept message {forged_death.id}: died in {elsewhere!r}, not in {source}",
    ]


async def _count(channel: aio_pika.abc.AbstractChannel, queue: str, expected: int) -> bool:
    return await count_messages(channel, queue) == expected
