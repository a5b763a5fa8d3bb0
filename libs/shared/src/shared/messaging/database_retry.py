"""Retrying a consumer's work in place while the database is away.

When a handler (or a preparation) fails because the database is unreachable (connection
refused, lost or out of slots), the message is not the problem: the work is retried in
place with growing pauses, for up to ``DATABASE_RETRY_SECONDS``, before the failure counts
against the delivery. Without this a database blip of a second spent every delivery of the
messages in flight and sent sound events to the DLQ.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.db import database_unavailable
from shared.messaging import metrics

logger = logging.getLogger(__name__)

T = TypeVar("T")

DATABASE_RETRY_SECONDS = 30.0  # in-place retries while the database is away, per message
_RETRY_PAUSE_FIRST, _RETRY_PAUSE_MAX = 0.1, 2.0


class DatabaseRetry:
    """Runs attempts for the consumer ``label``; ``stopping()`` true ends the retries."""

    def __init__(self, label: str, *, stopping: Callable[[], bool]) -> None:
        self.label = label
        self._stopping = stopping

    async def __call__(self, attempt: Callable[[], Awaitable[T]], *, what: str) -> T:
        """``attempt()``, retried in place while the database is unavailable (bounded, and
        not once the consumer is stopping)."""
        deadline = time.monotonic() + DATABASE_RETRY_SECONDS
        pause = _RETRY_PAUSE_FIRST
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if (
                    not database_unavailable(exc)
                    or self._stopping()
                    or time.monotonic() >= deadline
                ):
                    raise
                metrics.EVENTS_FAILED.labels(self.label).inc()
                logger.warning(
                    "%s: database unavailable for %s, retrying in %.1fs: %r",
                    self.label,
                    what,
                    pause,
                    exc,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _RETRY_PAUSE_MAX)
