"""Periodic jobs: what a worker runs on a timer beside its consumers (sweepers, reconcilers).

A service declares its jobs (``PeriodicJob``: name, interval, jitter, function) and hands
them to ``run_worker``, which runs each in a task of its own: the function now (or after a
first pause), then again ``interval`` seconds after each run ends, plus up to ``jitter``
seconds at random so that workers started together drift apart. A run that raises is
logged and counted, and the next one tries again: the database may be away for a moment.
On stop, a run in progress finishes; no new one starts. Several workers may run the same
job at once: each job claims its rows (``FOR UPDATE SKIP LOCKED``) or is otherwise safe to
repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from shared.messaging import metrics
from shared.tracing import untraced

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    """A job run every ``interval`` seconds (plus up to ``jitter``) by the worker runner."""

    name: str
    interval: float
    run: Callable[[], Awaitable[object]]
    jitter: float = 0.0
    pause_first: bool = False
    """Wait one interval before the first run (a job with nothing to do at start-up)."""

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.jitter < 0:
            raise ValueError("a periodic job needs a positive interval and no negative jitter")


class PeriodicJobs:
    """The running jobs of one worker: started together, stopped together (module doc)."""

    def __init__(self, jobs: Sequence[PeriodicJob]) -> None:
        self.jobs = tuple(jobs)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job), name=job.name) for job in self.jobs]

    async def stop(self) -> None:
        """No new run starts; waits for the runs in progress to end."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    async def _loop(self, job: PeriodicJob) -> None:
        if job.pause_first:
            await self._pause(job)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                with untraced():  # no request's trace follows a job (shared.tracing)
                    await job.run()
            except Exception:
                metrics.JOB_RUNS.labels(job.name, "failed").inc()
                logger.exception("%s failed", job.name)
            else:
                metrics.JOB_RUNS.labels(job.name, "done").inc()
            metrics.JOB_DURATION.labels(job.name).observe(time.perf_counter() - started)
            await self._pause(job)

    async def _pause(self, job: PeriodicJob) -> None:
        seconds = job.interval + (random.uniform(0, job.jitter) if job.jitter else 0.0)  # noqa: S311
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
