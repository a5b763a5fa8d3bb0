"""Deliveries into batches: what each transaction of a consumer takes.

Deliveries that arrive while a transaction is busy wait, and the next transaction takes all
of them (up to ``max_batch``): the oldest delivery once it is ready (refused or prepared, see
``reception``) and every ready one behind it. A delivery still preparing ends the batch, so
one slow call delays only the deliveries behind it. Under load the begin, claim, commit and
ack are paid once per batch instead of once per event; at a trickle every batch holds one
event and nothing waits. While batches come close together, a runner that finds the
consumer idle waits ``consumer_linger_ms`` first, so the deliveries right behind share its
batch (``shared.messaging.linger``). Up to ``concurrency`` runners take batches at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from shared.messaging.handlers import Delivery
from shared.messaging.linger import Linger
from shared.messaging.reception import Arrival

logger = logging.getLogger(__name__)


class Batches:
    """The arrivals of one consumer, handed to ``handle`` a batch at a time (module doc)."""

    def __init__(
        self,
        label: str,
        *,
        handle: Callable[[list[Delivery]], Awaitable[None]],
        max_batch: int,
        concurrency: int,
        linger_ms: float,
    ) -> None:
        self.label = label
        self._handle = handle
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._linger = Linger(linger_ms)
        self._waiting: deque[Arrival] = deque()
        self.in_flight = 0  # arrived and not yet settled: waiting or in a batch
        self._runners = 0
        self._runner_tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, arrival: Arrival) -> None:
        """Queue an arrival; it counts as in flight until its batch is handled."""
        self._waiting.append(arrival)
        self.in_flight += 1
        self._idle.clear()
        if self._runners < self._concurrency:
            self._runners += 1
            runner = asyncio.create_task(self._run(), name=f"{self.label} batches")
            self._runner_tasks.add(runner)  # a strong reference until it ends
            runner.add_done_callback(self._runner_tasks.discard)

    async def drained(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for nothing to be in flight; whether that happened."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        try:
            # A runner starts when a delivery finds the consumer idle; while batches come
            # close together, the deliveries right behind it share its batch.
            await self._linger.wait()
            while self._waiting:
                taken = [self._waiting.popleft()]
                try:
                    first = await taken[0]
                    waiting, most = self._waiting, self._max_batch
                    while waiting and len(taken) < most and waiting[0].done():
                        taken.append(waiting.popleft())
                    batch = [first, *(ready.result() for ready in taken[1:])]
                    await self._handle([delivery for delivery in batch if delivery])
                except Exception:  # handle settles everything itself; never lose a runner
                    logger.exception("%s: unexpected error handling a batch", self.label)
                finally:
                    self.in_flight -= len(taken)
                    if self.in_flight == 0:
                        self._idle.set()
                    self._linger.batch_ended()
        finally:
            self._runners -= 1
