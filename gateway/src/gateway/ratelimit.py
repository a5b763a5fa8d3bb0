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
# ``limits`` library's strategy costs two Redis calls per limit, and even one call per
# request would be a large share of the gateway's CPU (redis-py's own path), so requests
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
# Python, the largest part of the limiter's CPU with seven per request, and one bulk reply
# parses faster than an array of two per request (bench/CHANGES.md). The keys are not
# passed as KEYS, and the window keys are derived from them here: a single Redis, not a
# cluster.
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


# Failed logins. One script call before the password is checked: whether the address signed
# in to the account recently (KEYS[1] exists) picks the budget, the known address's own
# (KEYS[2]) or the account's across all addresses (KEYS[3]); the attempt is counted against
# it at once, like the batch script above (sliding windows), so that concurrent guesses
# cannot all pass before any of them is counted. A correct password then takes its count
# back (LOGIN_SUCCEEDED_SCRIPT), so only failures stay counted.
# ARGV[1]: n, then n pairs (amount, window) for the known budget; then m and m pairs for the
# account's. Returns {refused index or 0, wait, known (0/1), counted window keys...}.
LOGIN_ATTEMPT_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local known = redis.call('EXISTS', KEYS[1]) == 1
local at = 1
local limits = {}
for part = 1, 2 do
  local count = tonumber(ARGV[at])
  local chosen = (part == 1) == known
  for i = 1, count do
    if chosen then
      limits[#limits + 1] = {tonumber(ARGV[at + 2 * i - 1]), tonumber(ARGV[at + 2 * i])}
    end
  end
  at = at + 2 * count + 1
end
local base = known and KEYS[2] or KEYS[3]
local counted = {}
for i, limit in ipairs(limits) do
  local amount, window = limit[1], limit[2]
  local key = base .. ':' .. amount .. '/' .. window
  local index = math.floor(now / window)
  local current_key = key .. ':' .. index
  local current = tonumber(redis.call('GET', current_key) or '0')
  local previous = tonumber(redis.call('GET', key .. ':' .. (index - 1)) or '0')
  local elapsed = (now - index * window) / window
  if previous * (1 - elapsed) + current + 1 > amount then
    local wait
    if current + 1 > amount then
      wait = (1 - elapsed) * window + window * math.max(0, 1 - (amount - 1) / current)
    else
      wait = (1 - (amount - current - 1) / previous - elapsed) * window
    end
    return {i, math.ceil(math.min(wait, window)), known and 1 or 0}
  end
  counted[#counted + 1] = {current_key, window}
end
local result = {0, 0, known and 1 or 0}
for _, entry in ipairs(counted) do
  redis.call('INCR', entry[1])
  redis.call('EXPIRE', entry[1], 2 * entry[2])
  result[#result + 1] = entry[1]
end
return result
"""
# The attempt's counts taken back (from the very windows they were added to); after a
# correct password (ARGV[1] > 0) the address is also known to the account for ARGV[1]
# seconds more. KEYS[1]: the (account, address) key; KEYS[2..]: the counted window keys.
LOGIN_TAKE_BACK_SCRIPT = """
for i = 2, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
if tonumber(ARGV[1]) > 0 then redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[1])) end
return 1
"""


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A login attempt counted as a failure until ``LoginLimits.succeeded`` takes it back."""

    known_key: str
    counted: tuple[str, ...]


class LoginLimits:
    """Budgets of failed logins per account, so that nobody can lock an owner out.

    Across all addresses an account has one budget of failures (guessing from a botnet
    stops there); an address that signed in to the account recently has a budget of its own
    for that account, which failures from elsewhere do not spend. A correct password costs
    nothing. (The per-address limit on all attempts is ``RateLimiter.login_per_address``.)
    """

    def __init__(
        self, redis_client: redis.asyncio.Redis, settings: GatewaySettings, prefix: str
    ) -> None:
        self.enabled = settings.rate_limit_enabled
        self.fail_open = settings.rate_limit_fail_open
        self._prefix = f"{prefix}:login"
        self._known_ttl = settings.login_known_address_ttl_seconds
        self._attempt = redis_client.register_script(LOGIN_ATTEMPT_SCRIPT)
        self._take_back = redis_client.register_script(LOGIN_TAKE_BACK_SCRIPT)
        self.per_known_address = parse_many(settings.rate_limit_login_failures_per_known_address)
        self.per_account = parse_many(settings.rate_limit_login_failures_per_account)

    def _args(self) -> list[int]:
        args: list[int] = []
        for limits in (self.per_known_address, self.per_account):
            args.append(len(limits))
            for limit in limits:
                args += [limit.amount, limit.get_expiry()]
        return args

    async def attempt(self, account: str, address: str) -> LoginAttempt | None:
        """Count an attempt on ``account`` from ``address`` as failed, or raise 429 when its
        budget is spent; None when nothing was counted (limits off, Redis away and failing
        open)."""
        if not self.enabled:
            return None
        pair = hashlib.sha256(f"{account}\n{address}".encode()).hexdigest()[:32]
        known_key = f"{self._prefix}:known:{pair}"
        keys = [known_key, f"{self._prefix}:failures:{pair}", f"{self._prefix}:failures:{account}"]
        try:
            reply = await self._attempt(keys=keys, args=self._args())
        except Exception as exc:  # Redis away, too slow, or refusing
            if not self.fail_open:
                raise RateLimiterUnavailable("Rate limiting is unavailable; retry later.") from exc
            logger.warning("login limiter unavailable, attempt let through: %r", exc)
            return None
        refused, wait, known = int(reply[0]), int(reply[1]), int(reply[2])
        if refused:
            limits = self.per_known_address if known else self.per_account
            wait = max(1, wait)
            raise RateLimitExceeded(
                Refusal(limits[refused - 1], retry_after=wait, reset_after=wait)
            )
        counted = tuple(key.decode() if isinstance(key, bytes) else str(key) for key in reply[3:])
        return LoginAttempt(known_key, counted)

    async def succeeded(self, attempt: LoginAttempt | None) -> None:
        """The password was right: the attempt costs nothing, and the address is known."""
        await self._give_back(attempt, remember_for=self._known_ttl)

    async def abandoned(self, attempt: LoginAttempt | None) -> None:
        """The attempt ended without a verdict on the password (an error): not a failure."""
        await self._give_back(attempt, remember_for=0)

    async def _give_back(self, attempt: LoginAttempt | None, *, remember_for: int) -> None:
        if attempt is None:
            return
        try:
            await self._take_back(keys=[attempt.known_key, *attempt.counted], args=[remember_for])
        except Exception as exc:  # the login itself is decided: never fail it for this
            logger.warning("login limiter unavailable, attempt not taken back: %r", exc)


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
        self.login = LoginLimits(self._redis, settings, self._prefix)
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
