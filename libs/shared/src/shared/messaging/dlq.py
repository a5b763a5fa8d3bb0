"""Dead-letter queue operations: list, inspect, replay (``python -m shared.messaging dlq``).

A refused queue (what a consumer refused for its provenance) is listed and inspected the
same way, and never replayed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from aio_pika.exceptions import QueueEmpty

from shared.messaging.broker import Broker
from shared.messaging.envelope import MalformedEventError, check_provenance, decode
from shared.messaging.reception import REFUSAL_REASON_HEADER, REFUSED_ROUTING_KEY_HEADER
from shared.messaging.topology import (
    DLQ_SUFFIX,
    REFUSED_SUFFIX,
    dlq_name,
    events_exchange_name,
    namespaced,
)
from shared.settings import BaseServiceSettings

logger = logging.getLogger(__name__)

# Replay headers are set by us; x-death and the delivery count belong to the broker's
# history of the old message and would only confuse the next dead-lettering.
_BROKER_HEADERS = (
    "x-death",
    "x-delivery-count",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
)


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered (or refused) message as an operator sees it."""

    message_id: str | None
    event_type: str | None
    reason: str | None
    source_queue: str | None
    routing_key: str | None
    deaths: int
    dead_lettered_at: datetime | None
    body: bytes


def resolve_dlq(settings: BaseServiceSettings, queue: str) -> str:
    """Accept a purpose (``orders.saga``), its queue, its DLQ or its refused queue; return the
    full name of the DLQ, or of the refused queue when that was named."""
    prefix = namespaced(settings, "")
    name = queue if prefix and queue.startswith(prefix) else namespaced(settings, queue)
    return name if name.endswith((DLQ_SUFFIX, REFUSED_SUFFIX)) else dlq_name(name)


def describe(message: AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    death = _latest_death(headers)
    routing_keys = death.get("routing-keys") or []
    when = death.get("time")
    count = death.get("count", 0)
    return DeadLetter(
        message_id=message.message_id,
        event_type=message.type,
        reason=_reason(headers, death),
        source_queue=str(death["queue"]) if "queue" in death else None,
        routing_key=str(routing_keys[0]) if routing_keys else _refused_key(headers),
        deaths=count if isinstance(count, int) else 0,
        dead_lettered_at=when if isinstance(when, datetime) else None,
        body=message.body,
    )


def _latest_death(headers: Mapping[str, Any]) -> dict[str, Any]:
    # The broker keeps x-death most recent first.
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def _reason(headers: Mapping[str, Any], death: dict[str, Any]) -> str | None:
    # A consumer's refusal (a forged envelope) is copied to its refused queue with its own
    # reason; a dead letter was dead-lettered by the broker, which says why in x-death.
    refusal = headers.get(REFUSAL_REASON_HEADER)
    if refusal is not None:
        return f"refused: {refusal}"
    return str(death["reason"]) if "reason" in death else None


def _refused_key(headers: Mapping[str, Any]) -> str | None:
    # A refused message was copied, not dead-lettered: no x-death, its key in a header.
    key = headers.get(REFUSED_ROUTING_KEY_HEADER)
    return str(key) if key else None


async def count_messages(channel: AbstractChannel, queue: str) -> int:
    """Messages ready in ``queue`` now."""
    # Straight to the protocol: a robust channel answers a passive declare of a queue it
    # already knows from its cache, with the count of that first declaration.
    underlay = await channel.get_underlay_channel()
    declared = await underlay.queue_declare(queue, passive=True)
    return int(declared.message_count or 0)


async def peek(channel: AbstractChannel, queue: str, *, limit: int) -> list[DeadLetter]:
    """Up to ``limit`` messages of a DLQ or refused queue; they stay in the queue (returned
    when the caller closes ``channel``)."""
    declared = await channel.declare_queue(queue, passive=True)
    found: list[DeadLetter] = []
    for _ in range(limit):
        try:
            message = await declared.get(no_ack=False, fail=True)
        except QueueEmpty:
            break
        assert message is not None
        found.append(describe(message))
    return found


class ReplayRefusedError(ValueError):
    """A dead letter a replay leaves in its DLQ: nothing vouches for the producer it claims."""


def replay_routing_key(
    headers: Mapping[str, Any], body: bytes, *, source_queue: str, events_exchange: str
) -> str:
    """The routing key a dead letter of ``source_queue`` goes back under: its envelope's type.

    A replay publishes as an operator, past the topic permissions that bound the message to
    its producer. Only the broker puts messages into a DLQ through the internal dead-letter
    exchange, but one upgraded from an earlier version may still hold that exchange not
    internal, open to any service with headers of its choosing (docs/deployment.md). So raise
    ``ReplayRefusedError`` for a consumer's refusal (never replayed), a body that is not an
    envelope or whose producer does not own its type, and a message whose x-death does not
    say it died in ``source_queue`` under that type.
    """
    if REFUSAL_REASON_HEADER in headers or REFUSED_ROUTING_KEY_HEADER in headers:
        raise ReplayRefusedError("refused by its consumer for its provenance: never replayed")
    try:
        event = decode(body)
        check_provenance(event, routing_key=event.type)
    except MalformedEventError as exc:  # RefusedEventError too
        raise ReplayRefusedError(str(exc)) from None
    death = _latest_death(headers)
    if not death:
        raise ReplayRefusedError("no x-death: not dead-lettered by the broker")
    if death.get("queue") != source_queue:
        raise ReplayRefusedError(f"died in {death.get('queue')!r}, not in {source_queue}")
    arrival = (death.get("exchange"), death.get("routing-keys"))
    # Either published under its type, or an earlier replay to its source queue.
    if arrival not in ((events_exchange, [event.type]), ("", [source_queue])):
        raise ReplayRefusedError(
            f"{event.type} died under {arrival[1]!r} of exchange {arrival[0]!r}, "
            "not under its own type"
        )
    return event.type


async def replay(
    broker: Broker, *, queue: str, limit: int | None = None, to_source_queue: bool = False
) -> int:
    """Republish dead letters and remove them from the DLQ; the number replayed.

    By default each goes back to the events exchange under its envelope's type (every bound
    purpose receives it again; their inboxes drop what they already handled). With
    ``to_source_queue`` it goes only to the queue this DLQ belongs to. A letter that
    ``replay_routing_key`` refuses stays in the DLQ, logged with the reason. At most the
    messages present when the replay starts are taken, so a message that dies again is not
    looped. A refused queue raises ``ReplayRefusedError``: nothing in it is replayed.
    """
    settings = broker.settings
    if queue.endswith(REFUSED_SUFFIX):
        raise ReplayRefusedError(f"{queue} holds refused messages: never replayed")
    if not queue.endswith(DLQ_SUFFIX):
        raise ValueError(f"{queue} is not a dead-letter queue")
    source = queue.removesuffix(DLQ_SUFFIX)
    events_exchange = events_exchange_name(settings)
    channel = await broker.channel(on_return_raises=True)
    try:
        declared = await channel.declare_queue(queue, passive=True)
        present = await count_messages(channel, queue)
        budget = present if limit is None else min(limit, present)
        events = await channel.get_exchange(events_exchange, ensure=False)
        default = channel.default_exchange
        replayed = 0
        for _ in range(budget):
            try:
                message = await declared.get(no_ack=False, fail=True)
            except QueueEmpty:
                break
            assert message is not None
            try:
                key = replay_routing_key(
                    message.headers or {},
                    message.body,
                    source_queue=source,
                    events_exchange=events_exchange,
                )
            except ReplayRefusedError as exc:
                # Left unacked until the channel closes, so the next get takes the next one.
                logger.warning("%s: kept message %s: %s", queue, message.message_id, exc)
                continue
            headers = {k: v for k, v in (message.headers or {}).items() if k not in _BROKER_HEADERS}
            headers["x-replayed-from"] = queue
            outgoing = aio_pika.Message(
                message.body,
                headers=headers,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type=message.content_type or "application/json",
                message_id=message.message_id,
                type=key,
            )
            if to_source_queue:
                await default.publish(outgoing, routing_key=source, mandatory=True)
            else:
                await events.publish(outgoing, routing_key=key, mandatory=True)
            await message.ack()  # only after the broker confirmed the copy
            replayed += 1
        return replayed
    finally:
        await channel.close()


async def list_dead_letter_queues(broker: Broker) -> list[tuple[str, int]]:
    """Every DLQ and refused queue of the namespace with its message count.

    AMQP cannot enumerate queues; the names come from ``rabbitmqctl`` on this host.
    """
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        raise RuntimeError("rabbitmqctl not found: name the queues (dlq show <queue>)")
    process = await asyncio.create_subprocess_exec(
        rabbitmqctl,
        "-q",
        "list_queues",
        "--no-table-headers",
        "name",
        "messages",
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    prefix = namespaced(broker.settings, "")
    found: list[tuple[str, int]] = []
    for line in output.decode().splitlines():
        name, _, count = line.partition("\t")
        if name.endswith((DLQ_SUFFIX, REFUSED_SUFFIX)) and (
            not broker.settings.broker_namespace or name.startswith(prefix)
        ):
            found.append((name, int(count or 0)))
    return sorted(found)
