"""Queue depths on ``/metrics``: each running consumer asks the broker, every few seconds, how
many messages wait in its queue, its DLQ and its refused queue, and how many consumers its
queue has.

Passive declarations on the consumer's own channel: nothing is created or changed, no
management API or extra permission is needed, and the values carry the same ``queue`` label
as the consumer's counters (the broker's Prometheus plugin would name the queues with their
namespace). Every replica of a worker reports the same queue: aggregate with max, not sum.
"""

from __future__ import annotations

from dataclasses import dataclass

from aio_pika.abc import AbstractChannel

from shared.messaging import metrics
from shared.messaging.topology import DeclaredQueue

INTERVAL_SECONDS = 15.0  # Prometheus' scrape interval: fresher values would go unseen


@dataclass(frozen=True)
class Depths:
    ready: int  # in the queue, not yet delivered (those delivered and unacked not counted)
    consumers: int  # attached to the queue, every replica's
    dead: int  # in its dead-letter queue
    refused: int = 0  # in its refused queue: envelopes its consumer refused for provenance


async def read_depths(channel: AbstractChannel, declared: DeclaredQueue, *, label: str) -> Depths:
    """Ask the broker, set the gauges of ``label`` (a consuming purpose) and return them."""
    # Straight to the protocol: a robust channel answers a passive declaration of a queue it
    # knows from its cache, with the counts of that first declaration.
    underlay = await channel.get_underlay_channel()
    queue = await underlay.queue_declare(declared.queue.name, passive=True)
    dlq = await underlay.queue_declare(declared.dead_letter_queue.name, passive=True)
    refused = await underlay.queue_declare(declared.refused_queue.name, passive=True)
    depths = Depths(
        ready=queue.message_count or 0,
        consumers=queue.consumer_count or 0,
        dead=dlq.message_count or 0,
        refused=refused.message_count or 0,
    )
    metrics.QUEUE_MESSAGES.labels(label).set(depths.ready)
    metrics.QUEUE_CONSUMERS.labels(label).set(depths.consumers)
    metrics.DEAD_LETTER_MESSAGES.labels(label).set(depths.dead)
    metrics.REFUSED_MESSAGES.labels(label).set(depths.refused)
    return depths
