"""The catalog cache: public product reads kept in Redis, shared by every inventory replica.

What is cached is the exact body a public read answers (product or list page, the same for
every caller who is not an admin), so a hit and a database read are byte for byte the same.
Each value is tagged with the epoch and generation read *before* the database read that
produced it; ``invalidate`` (called once a changing write commits, see
``inventory.products.staleness``) bumps the generations, so older values stop matching at
once. A TTL counted from the database read bounds what a lost invalidation leaves. Misses of
one key share one database read (single flight in a process, a short Redis lock across
replicas). Redis is optional: when it fails or is slow, reads go to the database and Redis
is left alone for a moment. The whole design: docs/catalog-cache.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio
from prometheus_client import Counter

from inventory.config import InventorySettings

logger = logging.getLogger(__name__)

LOOKUPS = Counter(
    "inventory_catalog_cache_lookups_total",
    "Public catalog reads looked up in the cache, by result: hit, or miss (including when "
    "Redis could not be asked). Hit ratio: hit / (hit + miss).",
    ["result"],
)
HITS = LOOKUPS.labels("hit")
MISSES = LOOKUPS.labels("miss")
LOADS = Counter(
    "inventory_catalog_cache_loads_total",
    "Database reads made to answer catalog cache misses (concurrent misses of one key share one).",
)
ERRORS = Counter(
    "inventory_catalog_cache_errors_total",
    "Redis calls of the catalog cache that failed or timed out.",
)

Load = Callable[[], Awaitable[bytes]]
"""Reads the database: the body to answer (and cache), or raises (a 404 is never cached)."""

GENERATION_TTL_SECONDS = 86_400  # far beyond any value's TTL: an expired generation reads 0
# Others wait while the lock is held; one whose holder died delays them this long at most.
LOCK_SECONDS = 1.0
LOCK_POLL_SECONDS = 0.005
_SEPARATOR = b"\n"  # tag (epoch.generation), separator, body


@dataclass(frozen=True, slots=True)
class _Lookup:
    generation: bytes
    body: bytes | None  # None: absent, or tagged with an older generation


class CatalogCache:
    """One per process: the app's reads and every process's invalidations."""

    def __init__(self, settings: InventorySettings) -> None:
        self.enabled = settings.catalog_cache_enabled
        self.freshness = settings.catalog_cache_freshness_seconds
        self._retry_seconds = settings.catalog_cache_retry_seconds
        self._prefix = settings.catalog_cache_prefix
        timeout = settings.catalog_cache_redis_timeout_seconds
        # Our own pool, so that close() ends its connections; none is opened while disabled.
        self._pool = redis.asyncio.ConnectionPool.from_url(
            settings.redis_url.get_secret_value(),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._redis = redis.asyncio.Redis(connection_pool=self._pool)
        self._flights: dict[tuple[str, bytes | None], asyncio.Future[bytes]] = {}
        self._skip_until = 0.0  # monotonic: Redis failed, leave it alone until then
        self._owed = False  # an invalidation was lost: bump the epoch once Redis is back

    async def close(self) -> None:
        await self._pool.disconnect()

    # -- keys -------------------------------------------------------------------------------

    def _product_keys(self, sku: str) -> tuple[str, str]:
        return f"{self._prefix}:gen:product:{sku}", f"{self._prefix}:product:{sku}"

    def _epoch_key(self) -> str:
        return f"{self._prefix}:epoch"

    def _lists_generation_key(self) -> str:
        return f"{self._prefix}:gen:lists"

    def _page_key(self, limit: int, cursor: str | None, text: str | None) -> str:
        # Hashed: a cursor and a search text are client input of any shape and length.
        params = f"{limit}\x00{cursor or ''}\x00{'' if text is None else text}"
        return f"{self._prefix}:list:{hashlib.sha256(params.encode()).hexdigest()[:32]}"

    # -- reads ------------------------------------------------------------------------------

    async def product(self, sku: str, load: Load) -> bytes:
        """The public body of product ``sku``: from the cache, else ``load()``."""
        generation_key, key = self._product_keys(sku)
        return await self._read(generation_key, key, load)

    async def page(self, limit: int, cursor: str | None, text: str | None, load: Load) -> bytes:
        """The public body of one list page: from the cache, else ``load()``."""
        key = self._page_key(limit, cursor, text)
        return await self._read(self._lists_generation_key(), key, load)

    async def _read(self, generation_key: str, key: str, load: Load) -> bytes:
        if not self.enabled:
            return await load()
        found = await self._lookup(generation_key, key)
        if found is not None and found.body is not None:
            HITS.inc()
            return found.body
        MISSES.inc()
        generation = found.generation if found is not None else None
        # By key and the generation seen: a request that saw a newer one (a write committed
        # meanwhile) must not be given the older read still under way.
        flight_key = (key, generation)
        flight = self._flights.get(flight_key)
        if flight is None:
            flight = asyncio.ensure_future(self._fill(generation_key, key, generation, load))
            self._flights[flight_key] = flight
            flight.add_done_callback(lambda done: self._landed(flight_key, done))
        # Shielded: a caller that goes away must not cancel the read the others wait for.
        return await asyncio.shield(flight)

    def _landed(self, key: tuple[str, bytes | None], flight: asyncio.Future[bytes]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: a 404 whose callers all left is not an error

    async def _lookup(self, generation_key: str, key: str) -> _Lookup | None:
        """The current generation and the value if it carries it; None if Redis is away."""
        if not self._usable():
            return None
        try:
            if self._owed:
                await self._redis.incr(self._epoch_key())
                self._owed = False
            values = await self._redis.mget(self._epoch_key(), generation_key, key)
        except Exception as exc:
            self._failed(exc)
            return None
        return _parse(values)

    async def _fill(
        self, generation_key: str, key: str, generation: bytes | None, load: Load
    ) -> bytes:
        """Read the database once for everyone missing ``key`` and store what it says.

        ``generation`` (None: Redis is away, store nothing) was read before the database
        is, so a write committed in between makes the stored value a miss, never stale.
        """
        lock = f"{self._prefix}:lock:{key}"
        locked = False
        if generation is not None:
            # The key again with the lock: another replica may have stored it meanwhile.
            pipe = self._redis.pipeline(transaction=False)
            pipe.set(lock, b"1", nx=True, px=_ms(LOCK_SECONDS))
            pipe.mget(self._epoch_key(), generation_key, key)
            try:
                taken, values = await pipe.execute()
            except Exception as exc:
                self._failed(exc)
                generation = None
            else:
                locked = bool(taken)
                found = _parse(values)
                if found.body is not None:
                    if locked:
                        await self._try(self._redis.delete(lock))
                    return found.body
                generation = found.generation
                if not locked:
                    waited = await self._wait_for(generation_key, key, lock)
                    if waited is not None:
                        return waited
        started = time.monotonic()
        try:
            LOADS.inc()
            body = await load()
        except BaseException:
            if locked:
                await self._try(self._redis.delete(lock))
            raise
        if generation is not None:
            # The TTL counts from the start of the database read: the value's true age.
            ttl_ms = _ms(self.freshness - (time.monotonic() - started))
            pipe = self._redis.pipeline(transaction=False)
            if ttl_ms > 0:
                pipe.set(key, generation + _SEPARATOR + body, px=ttl_ms)
            if locked:
                pipe.delete(lock)
            await self._try(pipe.execute())
        return body

    async def _wait_for(self, generation_key: str, key: str, lock: str) -> bytes | None:
        """Another replica holds ``lock`` while it reads the database for ``key``: its value
        once stored; None when the lock is released without one (a 404) or Redis fails."""
        deadline = time.monotonic() + LOCK_SECONDS
        while time.monotonic() < deadline:
            await asyncio.sleep(LOCK_POLL_SECONDS)
            pipe = self._redis.pipeline(transaction=False)
            pipe.mget(self._epoch_key(), generation_key, key)
            pipe.exists(lock)
            try:
                values, held = await pipe.execute()
            except Exception as exc:
                self._failed(exc)
                return None
            found = _parse(values)
            if found.body is not None:
                return found.body
            if not held:
                return None
        return None

    # -- invalidation -----------------------------------------------------------------------

    async def invalidate(self, skus: frozenset[str]) -> None:
        """Products ``skus`` changed: their values and every list page's stop matching now.
        Never raises; while Redis is away it is skipped (the TTL bounds what is left)."""
        if not self.enabled:
            return
        if not self._usable():
            self._owed = True
            return
        pipe = self._redis.pipeline(transaction=False)
        if self._owed:
            pipe.incr(self._epoch_key())
        for sku in sorted(skus):
            generation_key, _ = self._product_keys(sku)
            pipe.incr(generation_key)
            pipe.expire(generation_key, GENERATION_TTL_SECONDS)
        pipe.incr(self._lists_generation_key())
        if await self._try(pipe.execute()):
            self._owed = False
        else:
            self._owed = True

    # -- Redis health -----------------------------------------------------------------------

    def _usable(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _failed(self, exc: Exception) -> None:
        ERRORS.inc()
        if self._usable():
            logger.warning(
                "catalog cache: Redis failed (%r); reading the database for %.1f s",
                exc,
                self._retry_seconds,
            )
        self._skip_until = time.monotonic() + self._retry_seconds

    async def _try(self, call: Awaitable[object]) -> bool:
        """Await a Redis call; whether it succeeded with a true result. Never raises."""
        try:
            return bool(await call)
        except Exception as exc:
            self._failed(exc)
            return False


def _parse(values: Any) -> _Lookup:
    """The answer to MGET epoch, generation, value (bytes: the client does not decode)."""
    generation = (values[0] or b"0") + b"." + (values[1] or b"0")
    value: bytes | None = values[2]
    if value is not None:
        tag, _, body = value.partition(_SEPARATOR)
        if tag == generation:
            return _Lookup(generation, body)
    return _Lookup(generation, None)


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
