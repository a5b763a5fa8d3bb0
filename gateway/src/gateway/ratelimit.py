"""Rate limits counted in Redis, so that every gateway replica sees the same counts."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from gateway.config import GatewaySettings
from shared.errors import DomainError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A limit that was exceeded, and when to come back."""

    limit: RateLimitItem
    retry_after: int
    reset_after: int

    def headers(self) -> dict[str, str]:
        return {
            "Retry-After": str(self.retry_after),
            # draft-ietf-httpapi-ratelimit-headers
            "RateLimit-Limit": str(self.limit.amount),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(self.reset_after),
            "RateLimit-Policy": f"{self.limit.amount};w={self.limit.get_expiry()}",
        }


class RateLimitExceeded(DomainError):
    status = 429
    title = "Too Many Requests"
    type = "/problems/rate-limited"

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(
            f"Too many requests; retry in {refusal.retry_after} s.", headers=refusal.headers()
        )


class RateLimiterUnavailable(DomainError):
    status = 503
    title = "Service Unavailable"
    type = "/problems/rate-limiter-unavailable"


def redis_storage_uri(redis_url: str) -> str:
    return f"async+{redis_url}"


def account_key(email: str) -> str:
    """An account's counter key: a digest, so Redis never holds email addresses."""
    return hashlib.sha256(email.encode()).hexdigest()[:32]


class RateLimiter:
    """Sliding-window counters (two Redis counters per limit: accurate and cheap).

    ``fail_open`` decides what happens when Redis is away: requests pass (and a warning is
    logged) or are refused with 503.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.fail_open = settings.rate_limit_fail_open
        redis_url = settings.redis_url.get_secret_value()
        # Our own pool, so that the lifespan can close its connections.
        self._pool = redis.asyncio.ConnectionPool.from_url(
            redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        pool_option: dict[str, Any] = {"connection_pool": self._pool}
        self.storage = RedisStorage(
            redis_storage_uri(redis_url),
            implementation="redispy",
            key_prefix=settings.rate_limit_prefix,
            wrap_exceptions=True,
            **pool_option,
        )
        self._strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.api = parse_many(settings.rate_limit_api)
        self.login_per_address = parse_many(settings.rate_limit_login_per_address)
        self.login_per_account = parse_many(settings.rate_limit_login_per_account)
        self.auth_per_address = parse_many(settings.rate_limit_auth_per_address)

    async def hit(self, limits: Sequence[RateLimitItem], *identifiers: str) -> Refusal | None:
        """Count one request against each limit; the first one exceeded, if any."""
        if not self.enabled:
            return None
        try:
            for limit in limits:
                if not await self._strategy.hit(limit, *identifiers):
                    stats = await self._strategy.get_window_stats(limit, *identifiers)
                    wait = max(1, math.ceil(stats.reset_time - time.time()))
                    return Refusal(limit, retry_after=wait, reset_after=wait)
        except Exception as exc:  # limits wraps the Redis client's errors in StorageError
            if not self.fail_open:
                raise RateLimiterUnavailable("Rate limiting is unavailable; retry later.") from exc
            logger.warning("rate limiter unavailable, request let through: %r", exc)
        return None

    async def enforce(self, limits: Sequence[RateLimitItem], *identifiers: str) -> None:
        refusal = await self.hit(limits, *identifiers)
        if refusal is not None:
            raise RateLimitExceeded(refusal)

    async def close(self) -> None:
        await self._pool.aclose()

    async def check(self) -> None:
        """Readiness: raise unless Redis answers."""
        if not await self.storage.check():
            raise ConnectionError("redis does not answer")
