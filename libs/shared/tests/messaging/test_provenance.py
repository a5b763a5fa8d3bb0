"""Forged envelopes: a consumer applies an event only from the service that owns its type.

The broker's topic permissions let each service publish only its own routing keys
(infra/rabbitmq/definitions.json, proven in tests/test_broker_permissions.py); the
consumer binds the body to the routing key and the claimed producer to the event type, and
puts what it refuses into the queue's refused queue, which no replay reads.
"""

from __future__ import annotations

import logging
import uuid

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.money import Money
from shared.contracts.orders import OrderCreated
from shared.contracts.payments import PaymentSucceeded
from shared.messaging import Envelope, RunningConsumer
from shared.messaging.dlq import ReplayRefusedError, count_messages, peek, replay, resolve_dlq
from shared.messaging.envelope import RefusedEventError, check_provenance
from shared.messaging.topology import dlq_name, events_exchange_name, refused_queue_name

from .conftest import Effect, Harness, metric, wait_until

PAID = PaymentSucceeded.event_type


def _payment() -> PaymentSucceeded:
    return PaymentSucceeded(
        payment_id=uuid.uuid4(), order_id=uuid.uuid4(), amount=Money(amount=1999, currency="USD")
    )


async def _saga_like_consumer(harness: Harness, name: str) -> RunningConsumer:
    """A consumer of payment outcomes (as the orders saga is), also bound to an orders key."""

    async def record(session: AsyncSession, event: Envelope) -> None:
        session.add(Effect(event_id=event.id, consumer=name))

    return await harness.consumer(name, handlers={PAID: record, OrderCreated.event_type: record})


async def test_forged_payment_succeeded_is_put_in_the_refused_queue_and_applies_nothing(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    name = "provenance"
    consumer = await _saga_like_consumer(harness, name)
    publisher = await harness.broker()
    channel = await publisher.channel()
    exchange = await channel.get_exchange(events_exchange_name(harness.settings), ensure=False)

    # A service allowed only orders.* keys claims to be payments, under payments' key...
    claims_payments = Envelope.new(_payment(), producer="orders")
    # ...or sends a payments body, producer and all, under a key it may publish.
    under_own_key = Envelope.new(_payment())
    genuine = Envelope.new(_payment())
    sends = [
        (claims_payments, PAID),
        (under_own_key, OrderCreated.event_type),
        (genuine, PAID),
    ]
    with caplog.at_level(logging.ERROR, logger="shared.messaging.reception"):
        for event, routing_key in sends:
            message = aio_pika.Message(
                event.to_bytes(), message_id=str(event.id), content_type="application/json"
            )
            await exchange.publish(message, routing_key=routing_key)

        refused = refused_queue_name(consumer.queue.name)
        await wait_until(lambda: harness.applied(name, 1), what="the genuine one applied")
        await wait_until(lambda: _count(channel, refused, 2), what="both forgeries refused")

    assert await harness.effects(name) == {genuine.id: 1}
    assert await count_messages(channel, dlq_name(consumer.queue.name)) == 0
    assert metric("messaging_events_dead_lettered_total", queue=name, reason="refused") == 2
    assert resolve_dlq(harness.settings, f"{name}.refused") == refused  # dlq show's lookup
    peeking = await publisher.channel()  # peeked messages return to the queue when it closes
    letters = {letter.message_id: letter for letter in await peek(peeking, refused, limit=5)}
    await peeking.close()
    assert letters.keys() == {str(claims_payments.id), str(under_own_key.id)}
    assert letters[str(claims_payments.id)].reason == (
        f"refused: producer 'orders' may not produce {PAID}"
    )
    assert letters[str(under_own_key.id)].reason == (
        f"refused: {PAID} arrived under routing key 'orders.order_created'"
    )
    assert letters[str(claims_payments.id)].body == claims_payments.to_bytes()
    assert letters[str(under_own_key.id)].routing_key == OrderCreated.event_type
    refusals = [r.getMessage() for r in caplog.records if "refusing message" in r.getMessage()]
    assert len(refusals) == 2

    # An operator's replay does not launder them: it refuses the refused queue. The peeked
    # messages go back to the quorum queue after the channel's close, not before it ends.
    await wait_until(lambda: _count(channel, refused, 2), what="the peeked ones back")
    with pytest.raises(ReplayRefusedError, match="never replayed"):
        await replay(publisher, queue=refused)
    assert await count_messages(channel, refused) == 2
    assert await harness.effects(name) == {genuine.id: 1}


async def _count(channel: aio_pika.abc.AbstractChannel, queue: str, expected: int) -> bool:
    return await count_messages(channel, queue) == expected


def test_provenance_holds_for_the_owner_under_its_own_key_or_put_straight_into_a_queue() -> None:
    event = Envelope.new(_payment())
    check_provenance(event, routing_key=PAID)
    check_provenance(event, routing_key=None)  # a DLQ replay to its source queue
    with pytest.raises(RefusedEventError):
        check_provenance(Envelope.new(_payment(), producer="orders"), routing_key=None)
    with pytest.raises(RefusedEventError):
        check_provenance(event, routing_key="payments.payment_failed")
