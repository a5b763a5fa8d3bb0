"""Rate limits counted in Redis, so that every gateway replica sees the same counts."""

from __future__ import annotations

import asyncio
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


# Sliding-window counters in Redis, for every request of a batch in one script call: the
# ``limits`` library's strategy costs two Redis calls and ~70 us of CPU per limit, and even
# one call per request was a third of the gateway's CPU (redis-py's own path), so requests
# that arrive while a call is out share the next one. Per limit, two fixed windows: the
# previous one weighs what is left of it, the current one counts in full. A request counts
# against none of its limits unless all of them allow it. Redis's clock decides the window,
# so replicas never disagree. Requests of a batch are decided in order, each seeing the
# counts of those before it.
#
# ARGV[1]: every limit key of every request, in order, one per line. ARGV[2]: per request,
# its number of limits k, then k pairs (amount, window seconds), space-separated. Returns
# per request two numbers: 0, 0 when allowed, else the index of the refusing limit
# (1-based) and the seconds to wait, all in one space-separated string. Two strings each
# way rather than one argument per key and number: redis-py encodes every argument in
# Python, which was 40% of the limiter's CPU with seven per request, and one bulk reply
# parses faster than an array of two per request. The keys are not passed as KEYS, and the
# window keys are derived from them here: a single Redis, not a cluster.
SLIDING_WINDOW_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local KEYS = {}
for key in string.gmatch(ARGV[1], '[^\\n]+') do KEYS[#KEYS + 1] = key end
local numbers = {}
for number in string.gmatch(ARGV[2], '%S+') do numbers[#numbers + 1] = tonumber(number) end
local ARGV = numbers
local results = {}
local key_at, arg_at = 1, 1
while arg_at <= #ARGV do
  local count = tonumber(ARGV[arg_at])
  local windows = {}
  local refused, wait = 0, 0
  for i = 1, count do
    local amount = tonumber(ARGV[arg_at + 2 * i - 1])
    local window = tonumber(ARGV[arg_at + 2 * i])
    local key = KEYS[key_at + i - 1]
    local index = math.floor(now / window)
    local current_key = key .. ':' .. index
    local current = tonumber(redis.call('GET', current_key) or '0')
    local previous = tonumber(redis.call('GET', key .. ':' .. (index - 1)) or '0')
    local elapsed = (now - index * window) / window
    if previous * (1 - elapsed) + current + 1 > amount then
      if current + 1 > amount then
        wait = (1 - elapsed) * window + window * math.max(0, 1 - (amount - 1) / current)
      else
        wait = (1 - (amount - current - 1) / previous - elapsed) * window
      end
      refused, wait = i, math.ceil(math.min(wait, window))
      break
    end
    windows[i] = {current_key, window}
  end
  if refused == 0 then
    for i = 1, count do
      redis.call('INCR', windows[i][1])
      redis.call('EXPIRE', windows[i][1], 2 * windows[i][2])
    end
  end
  results[#results + 1] = refused
  results[#results + 1] = wait
  key_at = key_at + count
  arg_at = arg_at + 2 * count + 1
end
return table.concat(results, ' ')
"""
MAX_BATCH = 256  # requests per script call at most: bounds the time Redis spends in one


@dataclass(slots=True)
class _Pending:
    keys: list[str]
    args: list[int]
    decided: asyncio.Future[tuple[int, int]]


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
        self._pending: list[_Pending] = []
        self._runner: asyncio.Task[None] | None = None
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
        args = [len(limits)]
        for limit in limits:
            args += [limit.amount, limit.get_expiry()]
        try:
            refused, wait = await self._decide(keys, args)
            if refused:
                wait = max(1, math.ceil(wait))
                return Refusal(limits[int(refused) - 1], retry_after=wait, reset_after=wait)
        except Exception as exc:  # Redis away, too slow, or refusing
            if not self.fail_open:
                raise RateLimiterUnavailable("Rate limiting is unavailable; retry later.") from exc
            logger.warning("rate limiter unavailable, request let through: %r", exc)
        return None

    async def _decide(self, keys: list[str], args: list[int]) -> tuple[int, int]:
        """Queue one request's check for the next script call; its (refused, wait)."""
        decided: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(keys, args, decided))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run_batches())
        return await decided

    async def _run_batches(self) -> None:
        # One call out at a time: requests queue while it runs and go together in the next.
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._call(batch)
        finally:
            self._runner = None

    async def _call(self, batch: list[_Pending]) -> None:
        keys: list[str] = []
        args: list[int] = []
        for pending in batch:
            keys += pending.keys
            args += pending.args
        try:
            reply = await self._script(args=["\n".join(keys), " ".join(map(str, args))])
        except Exception as exc:  # every request of the batch meets the same failure
            for pending in batch:
                if not pending.decided.done():
                    pending.decided.set_exception(exc)
            return
        results = reply.split()
        for index, pending in enumerate(batch):
            if not pending.decided.done():  # its request may have been cancelled
                pending.decided.set_result((int(results[2 * index]), int(results[2 * index + 1])))

    async def enforce(self, limits: Sequence[RateLimitItem], *identifiers: str) -> None:
        refusal = await self.hit(limits, *identifiers)
        if refusal is not None:
            raise RateLimitExceeded(refusal)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
        await self._pool.aclose()

    async def check(self) -> None:
        """Readiness: raise unless Redis answers."""
        if not await self._redis.ping():
            raise ConnectionError("redis does not answer")
