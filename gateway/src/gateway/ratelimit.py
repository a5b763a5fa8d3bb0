"""Rate limits counted in Redis, so that every gateway replica sees the same counts."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio
from limits import RateLimitItem, parse_many

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


# Sliding-window counters for every limit of a request in one round trip (the ``limits``
# library's strategy costs two Redis calls and ~70 us of CPU per limit: measured, it halved
# the gateway's throughput). Per limit, two fixed windows: the previous one weighs what is
# left of it, the current one counts in full. Nothing is counted unless every limit allows
# the request. Redis's clock decides the window, so replicas never disagree. Returns
# {0, 0} when allowed, else {index of the refusing limit (1-based), seconds to wait}.
# Window keys are derived here from KEYS (a single Redis, not a cluster).
SLIDING_WINDOW_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local windows = {}
for i = 1, #KEYS do
  local amount = tonumber(ARGV[2 * i - 1])
  local window = tonumber(ARGV[2 * i])
  local index = math.floor(now / window)
  local current_key = KEYS[i] .. ':' .. index
  local current = tonumber(redis.call('GET', current_key) or '0')
  local previous = tonumber(redis.call('GET', KEYS[i] .. ':' .. (index - 1)) or '0')
  local elapsed = (now - index * window) / window
  if previous * (1 - elapsed) + current + 1 > amount then
    local wait
    if current + 1 > amount then
      wait = (1 - elapsed) * window + window * math.max(0, 1 - (amount - 1) / current)
    else
      wait = (1 - (amount - current - 1) / previous - elapsed) * window
    end
    return {i, math.ceil(math.min(wait, window))}
  end
  windows[i] = {current_key, window}
end
for i = 1, #windows do
  redis.call('INCR', windows[i][1])
  redis.call('EXPIRE', windows[i][1], 2 * windows[i][2])
end
return {0, 0}
"""


def account_key(email: str) -> str:
    """An account's counter key: a digest, so Redis never holds email addresses."""
    return hashlib.sha256(email.encode()).hexdigest()[:32]


class RateLimiter:
    """Sliding-window counters (two Redis counters per limit: accurate and cheap), all the
    limits of a request checked and counted by one script call.

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
        self._redis = redis.asyncio.Redis(connection_pool=self._pool)
        self._script = self._redis.register_script(SLIDING_WINDOW_SCRIPT)
        self._prefix = settings.rate_limit_prefix
        self.api = parse_many(settings.rate_limit_api)
        self.login_per_address = parse_many(settings.rate_limit_login_per_address)
        self.login_per_account = parse_many(settings.rate_limit_login_per_account)
        self.auth_per_address = parse_many(settings.rate_limit_auth_per_address)

    async def hit(self, limits: Sequence[RateLimitItem], *identifiers: str) -> Refusal | None:
        """Count one request against each limit; the first one exceeded, if any."""
        if not self.enabled:
            return None
        if not limits:
            return None
        keys = [f"{self._prefix}:{limit.key_for(*identifiers)}" for limit in limits]
        windows: list[int] = []
        for limit in limits:
            windows += [limit.amount, limit.get_expiry()]
        try:
            refused, wait = await self._script(keys=keys, args=windows)
            if refused:
                wait = max(1, math.ceil(wait))
                return Refusal(limits[int(refused) - 1], retry_after=wait, reset_after=wait)
        except Exception as exc:  # Redis away, too slow, or refusing
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
        if not await self._redis.ping():
            raise ConnectionError("redis does not answer")
