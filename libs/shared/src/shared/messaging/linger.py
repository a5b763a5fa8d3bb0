"""A short wait before a batch, taken only while batches come close together.

A relay woken by a commit, or a consumer's runner started by a delivery, would otherwise take
a batch of one event each time, paying its fixed round trips (a relay's claim, mark and
commit; a consumer's begin, inbox claim, outbox write and commit) once per event. Near the
shop's capacity those fixed costs take the cores the saga needs, and every hop queues for
them. Waiting a few milliseconds lets the events right behind share the batch, which lowers
both the CPU per order and the saga's latency tail there (bench/CHANGES.md).

At a trickle (a developer's order, a test) nothing else is coming, so the wait would be pure
delay: it is taken only when the previous batch ended less than ``BUSY_WITHIN_SECONDS`` ago.
Where events come often but the cores are free it is delay too (``bench/messaging.py``'s
latency at 1,000 events/s rises with it).
"""

from __future__ import annotations

import asyncio
import math
import time

BUSY_WITHIN_SECONDS = 0.1  # batches closer than this: events are arriving often


class Linger:
    """When to wait before the next batch (module doc)."""

    def __init__(self, milliseconds: float) -> None:
        self.seconds = milliseconds / 1000
        self._last_batch_ended = -math.inf

    def batch_ended(self, now: float | None = None) -> None:
        self._last_batch_ended = time.monotonic() if now is None else now

    def pause(self, now: float) -> float:
        """The wait before a batch starting at ``now``: 0 unless batches come close together."""
        if self.seconds and now - self._last_batch_ended < BUSY_WITHIN_SECONDS:
            return self.seconds
        return 0.0

    async def wait(self) -> None:
        pause = self.pause(time.monotonic())
        if pause:
            await asyncio.sleep(pause)
