"""Names and declarations: the events exchange, per-purpose quorum queues, their DLQs and
their refused queues.

Every name carries the settings' ``broker_namespace`` as a prefix, so concurrent test runs
(or tenants of one broker) never meet. Declarations are idempotent: they run at every start.
The dead-letter exchange is internal: only the broker's dead-lettering puts messages into a
DLQ, so what a replay republishes was once published under its type by its owner. A consumer
puts what it refuses into its refused queue, through an exchange of its own that no replay
reads.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustChannel
from aiormq.exceptions import ChannelPreconditionFailed
from pamqp.common import FieldTable

from shared.settings import BaseServiceSettings

logger = logging.getLogger(__name__)

EVENTS_EXCHANGE = "commerce.events"
DEAD_LETTER_EXCHANGE = "commerce.dead-letter"
REFUSED_EXCHANGE = "commerce.refused"
DLQ_SUFFIX = ".dlq"
REFUSED_SUFFIX = ".refused"


def namespaced(settings: BaseServiceSettings, name: str) -> str:
    """``name`` under the settings' namespace (``{ns}.{name}``, or ``name`` when empty)."""
    return f"{settings.broker_namespace}.{name}" if settings.broker_namespace else name


def events_exchange_name(settings: BaseServiceSettings) -> str:
    return namespaced(settings, EVENTS_EXCHANGE)


def dead_letter_exchange_name(settings: BaseServiceSettings) -> str:
    return namespaced(settings, DEAD_LETTER_EXCHANGE)


def refused_exchange_name(settings: BaseServiceSettings) -> str:
    return namespaced(settings, REFUSED_EXCHANGE)


def queue_name(settings: BaseServiceSettings, purpose: str) -> str:
    """The quorum queue of one consuming purpose, e.g. ``inventory.reservations``."""
    return namespaced(settings, purpose)


def dlq_name(queue: str) -> str:
    return f"{queue}{DLQ_SUFFIX}"


def refused_queue_name(queue: str) -> str:
    """Where ``queue``'s consumer puts the envelopes it refuses (``reception``)."""
    return f"{queue}{REFUSED_SUFFIX}"


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
    refused_queue: AbstractQueue


async def declare_exchanges(
    channel: AbstractChannel, *, settings: BaseServiceSettings
) -> tuple[AbstractExchange, AbstractExchange]:
    """Declare the events exchange (topic) and the dead-letter exchange (direct, internal),
    durable."""
    events = await channel.declare_exchange(
        events_exchange_name(settings), aio_pika.ExchangeType.TOPIC, durable=True
    )
    dead_letter = await _declare_dead_letter_exchange(channel, dead_letter_exchange_name(settings))
    return events, dead_letter


async def _declare_dead_letter_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    if not await _declare_internal(channel, name):
        _warn_not_internal(name)
    if isinstance(channel, AbstractRobustChannel):
        channel.reopen_callbacks.add(_DeadLetterExchangeRestorer(name))
    # Declared above. Not on this channel: a robust channel would restore a passive
    # declaration (it restores no internal one), which fails on a broker without the exchange.
    return await channel.get_exchange(name, ensure=False)


async def _declare_internal(channel: AbstractChannel, name: str) -> bool:
    """Declare ``name`` a durable internal direct exchange; False if the broker already holds
    it not internal. On a channel of its own: the broker refuses a declaration that differs
    from the exchange it holds by closing the channel that asked."""
    underlay = await channel.get_underlay_channel()
    probe = await underlay.connection.channel(publisher_confirms=False)
    try:
        await probe.exchange_declare(name, exchange_type="direct", durable=True, internal=True)
    except ChannelPreconditionFailed:
        return False
    finally:
        await probe.close()
    return True


@functools.cache  # once per process and exchange: every channel declares it
def _warn_not_internal(name: str) -> None:
    logger.warning(
        "%s was declared not internal by an earlier version, so any user who may write to it "
        "can put messages into a DLQ; using it as it is. Once every worker runs this version, "
        "stop them all, delete %s (queues and their messages stay) and start them again: it is "
        "declared internal (docs/deployment.md)",
        name,
        name,
    )


@dataclass(frozen=True)  # equal by name: a channel holds one per exchange however often asked
class _DeadLetterExchangeRestorer:
    """Declares the dead-letter exchange again when a robust channel reopens.

    aio-pika restores no internal exchange, and a DLQ's binding to an exchange the broker
    lost (a new node) cannot be restored: the connection would retry forever. Channels that
    fail on a missing exchange are restored again after the others, so the broker's own
    channel (``Broker.connect``), which binds no DLQ, declares it for those that do.
    """

    name: str

    async def __call__(self, channel: AbstractRobustChannel | None) -> None:
        if channel is not None:  # None once the channel is gone (aio-pika holds it weakly)
            await _declare_internal(channel, self.name)


async def declare_queue(
    channel: AbstractChannel,
    *,
    settings: BaseServiceSettings,
    purpose: str,
    event_types: Iterable[str],
) -> DeclaredQueue:
    """Declare one purpose's quorum queue bound to ``event_types``, its DLQ and its refused
    queue."""
    events, dead_letter = await declare_exchanges(channel, settings=settings)
    refused = await channel.declare_exchange(
        refused_exchange_name(settings), aio_pika.ExchangeType.DIRECT, durable=True
    )
    name = queue_name(settings, purpose)
    dlq = await _declare_side_queue(channel, dlq_name(name), bound_to=dead_letter, key=name)
    refusals = await _declare_side_queue(
        channel, refused_queue_name(name), bound_to=refused, key=name
    )
    queue = await channel.declare_queue(
        name, durable=True, arguments=queue_arguments(settings, name)
    )
    for event_type in sorted(set(event_types)):
        await queue.bind(events, routing_key=event_type)
    return DeclaredQueue(queue=queue, dead_letter_queue=dlq, refused_queue=refusals)


async def _declare_side_queue(
    channel: AbstractChannel, name: str, *, bound_to: AbstractExchange, key: str
) -> AbstractQueue:
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(bound_to, routing_key=key)
    return queue


async def delete_topology(
    channel: AbstractChannel, *, settings: BaseServiceSettings, purposes: Iterable[str]
) -> None:
    """Delete queues, DLQs, refused queues and the three exchanges of a namespace (test
    clean-up, tear-down)."""
    for purpose in purposes:
        name = queue_name(settings, purpose)
        await channel.queue_delete(name)
        await channel.queue_delete(dlq_name(name))
        await channel.queue_delete(refused_queue_name(name))
    await channel.exchange_delete(events_exchange_name(settings))
    await channel.exchange_delete(dead_letter_exchange_name(settings))
    await channel.exchange_delete(refused_exchange_name(settings))
