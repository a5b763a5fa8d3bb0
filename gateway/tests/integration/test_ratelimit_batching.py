"""Concurrent requests share Redis calls, and every request is still counted exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.asyncio

from gateway.config import GatewaySettings
from gateway.ratelimit import RateLimiter
from shared.testing.redis_keys import fresh_sub_namespace


async def _script_calls(client: redis.asyncio.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(
        int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_evalsha", "cmdstat_eval")
    )


async def test_concurrent_requests_are_decided_in_shared_calls_and_counted_once(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    settings = make_settings(broker_namespace=fresh_sub_namespace(), rate_limit_api="5/minute")
    limiter = RateLimiter(settings)
    inspector = redis.asyncio.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        await limiter.hit(limiter.api, "api", "warm-up")  # loads the script
        calls_before = await _script_calls(inspector)

        first = [limiter.hit(limiter.api, "api", "user:a") for _ in range(12)]
        second = [limiter.hit(limiter.api, "api", "user:b") for _ in range(3)]
        decisions = await asyncio.gather(*first, *second)

        calls = await _script_calls(inspector) - calls_before
    finally:
        await limiter.close()
        await inspector.aclose()

    for_a, for_b = decisions[:12], decisions[12:]
    assert sum(refusal is None for refusal in for_a) == 5
    assert for_a[:5] == [None] * 5  # decided in arrival order
    assert all(refusal is not None and refusal.retry_after >= 1 for refusal in for_a[5:])
    assert for_b == [None] * 3  # another identity, its own counters
    assert calls <= 2  # fifteen requests, one call out and one for those that queued
