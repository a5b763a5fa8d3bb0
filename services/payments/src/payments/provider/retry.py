"""Bounded exponential backoff around a provider call that may fail transiently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from payments.backoff import doubling_pause
from payments.config import PaymentsSettings
from payments.provider.base import ProviderUnavailableError

T = TypeVar("T")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    initial_backoff_seconds: float
    max_backoff_seconds: float

    @classmethod
    def from_settings(cls, settings: PaymentsSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.provider_max_attempts,
            initial_backoff_seconds=settings.provider_backoff_initial_seconds,
            max_backoff_seconds=settings.provider_backoff_max_seconds,
        )

    def pauses(self) -> list[float]:
        """The pause before each retry: doubling from the initial pause, capped."""
        return [
            doubling_pause(
                retry, initial=self.initial_backoff_seconds, cap=self.max_backoff_seconds
            )
            for retry in range(self.max_attempts - 1)
        ]


async def with_retries(call: Callable[[], Awaitable[T]], *, policy: RetryPolicy, what: str) -> T:
    """Run ``call``; on ``ProviderUnavailableError`` pause and try again, up to the policy's
    attempts, then raise the last error. ``call`` must reuse its idempotency key."""
    pauses = policy.pauses()
    for attempt, pause in enumerate([*pauses, None], start=1):
        try:
            return await call()
        except ProviderUnavailableError as exc:
            if pause is None:
                logger.warning(
                    "%s: provider unavailable, giving up after %d attempts", what, attempt
                )
                raise
            logger.info(
                "%s: provider unavailable (%s), retry %d in %.2fs", what, exc, attempt, pause
            )
            await asyncio.sleep(pause)
    raise AssertionError("unreachable: the last attempt returns or raises")
