"""Names and declarations: the events exchange, per-purpose quorum queues and their DLQs.

Every name carries the settings' ``broker_namespace`` as a prefix, so concurrent test runs
(or tenants of one broker) never meet. Declarations are idempotent: they run at every start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from pamqp.common import FieldTable

from shared.settings import BaseServiceSettings

EVENTS_EXCHANGE = "commerce.events"
DEAD_LETTER_EXCHANGE = "commerce.dead-letter"
DLQ_SUFFIX = ".dlq"


def namespaced(settings: BaseServiceSettings, name: str) -> str:
    """``name`` under the settings' namespace (``{ns}.{name}``, or ``name`` when empty)."""
    return f"{settings.broker_namespace}.{name}" if settings.broker_namespace else name


def events_exchange_name(settings: BaseServiceSettings) -> str:
    return namespaced(settings, EVENTS_EXCHANGE)


def dead_letter_exchange_name(settings: BaseServiceSettings) -> str:
    return namespaced(settings, DEAD_LETTER_EXCHANGE)


def queue_name(settings: BaseServiceSettings, purpose: str) -> str:
    """The quorum queue of one consuming purpose, e.g. ``inventory.reservations``."""
    return namespaced(settings, purpose)


def dlq_name(queue: str) -> str:
    return f"{queue}{DLQ_SUFFIX}"


def queue_arguments(settings: BaseServiceSettings, queue: str) -> FieldTable:
    # reject-publish is what at-least-once dead-lettering requires: with drop-head the broker
    # could drop a message it is still dead-lettering.
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": settings.broker_delivery_limit,
        "x-dead-letter-exchange": dead_letter_exchange_name(settings),
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


@dataclass(frozen=True)
class DeclaredQueue:
    """A consuming queue as declared; the objects are kept so robust channels restore them."""

    queue: AbstractQueue
    dead_letter_queue: AbstractQueue


async def declare_exchanges(
    channel: AbstractChannel, *, settings: BaseServiceSettings
) -> tuple[AbstractExchange, AbstractExchange]:
    """Declare the events exchange (topic) and the dead-letter exchange (direct), durable."""
    events = await channel.declare_exchange(
        events_exchange_name(settings), aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead_letter = await channel.declare_exchange(
        dead_letter_exchange_name(settings), aio_pika.ExchangeType.DIRECT, durable=True
    )
    return events, dead_letter


async def declare_queue(
    channel: AbstractChannel,
    *,
    settings: BaseServiceSettings,
    purpose: str,
    event_types: Iterable[str],
) -> DeclaredQueue:
    """Declare one purpose's quorum queue bound to ``event_types``, and its DLQ."""
    events, dead_letter = await declare_exchanges(channel, settings=settings)
    name = queue_name(settings, purpose)
    dlq = await channel.declare_queue(
        dlq_name(name), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dead_letter, routing_key=name)
    queue = await channel.declare_queue(
        name, durable=True, arguments=queue_arguments(settings, name)
    )
    for event_type in sorted(set(event_types)):
        await queue.bind(events, routing_key=event_type)
    return DeclaredQueue(queue=queue, dead_letter_queue=dlq)


async def delete_topology(
    channel: AbstractChannel, *, settings: BaseServiceSettings, purposes: Iterable[str]
) -> None:
    """Delete queues, DLQs and both exchanges of a namespace (test clean-up, tear-down)."""
    for purpose in purposes:
        name = queue_name(settings, purpose)
        await channel.queue_delete(name)
        await channel.queue_delete(dlq_name(name))
    await channel.exchange_delete(events_exchange_name(settings))
    await channel.exchange_delete(dead_letter_exchange_name(settings))
