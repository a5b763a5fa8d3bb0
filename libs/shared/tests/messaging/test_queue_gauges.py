"""Queue, DLQ and refused-queue depths read from the broker by each consumer; redeliveries
counted."""

from __future__ import annotations

import aio_pika

from shared.messaging.depths import Depths
from shared.messaging.topology import dlq_name, refused_queue_name

from .conftest import Harness, metric, wait_until


async def test_a_consumer_reports_its_queue_and_dlq_depths_and_consumers(
    harness: Harness,
) -> None:
    name = "depths"
    running = await harness.consumer(name, start=False)
    await harness.emit(3)
    await harness.relay()
    await wait_until(lambda: _ready_and_dead(harness, name, (3, 0)), what="3 waiting")

    # A message in the DLQ, put there as an operator could (through the default exchange).
    channel = await (await harness.broker()).channel()
    await channel.default_exchange.publish(
        aio_pika.Message(b"dead"), routing_key=dlq_name(running.queue.name)
    )
    await channel.default_exchange.publish(
        aio_pika.Message(b"refused"), routing_key=refused_queue_name(running.queue.name)
    )
    assert await running.read_depths() == Depths(ready=3, consumers=0, dead=1, refused=1)
    assert metric("messaging_queue_messages", queue=name) == 3
    assert metric("messaging_dead_letter_messages", queue=name) == 1
    assert metric("messaging_refused_messages", queue=name) == 1
    assert metric("messaging_queue_consumers", queue=name) == 0

    await running.start()
    await wait_until(lambda: harness.applied(name, 3), what="3 handled")
    await wait_until(lambda: _ready_and_dead(harness, name, (0, 1)), what="queue drained")
    assert metric("messaging_queue_consumers", queue=name) == 1


async def _ready_and_dead(harness: Harness, name: str, expected: tuple[int, int]) -> bool:
    [running] = [c for c in harness.consumers if c.consumer.name == name]
    depths = await running.read_depths()
    return (depths.ready, depths.dead) == expected
