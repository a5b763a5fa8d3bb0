"""Rate limiter benchmark: CPU per check of the gateway's limiter against the local Redis.

Prints figures, never pass/fail. 64 concurrent callers (as 64 client connections would be)
check the gateway's default API limits (two per request) for identities of their own; the
checks that arrive while a script call is out share the next one, as in the gateway. The
figure is this process's CPU per check (Redis's own is not counted), the part of the
gateway's CPU per request that the rate limit takes. Keys live under a prefix of their own
and are removed at the end.

``python -m bench.ratelimit [--callers 64] [--checks 600]``
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import redis.asyncio
import uvloop

from gateway.config import GatewaySettings
from gateway.ratelimit import RateLimiter


async def run(callers: int, checks: int) -> None:
    # The default limits' shape (per second and per minute), too high to refuse anything;
    # a namespace of its own, so its keys are apart from any gateway's.
    settings = GatewaySettings(
        environment="development",  # the local Redis, the development signing key
        rate_limit_api="1000000/second;100000000/minute",
        broker_namespace=f"bench-ratelimit-{uuid.uuid4().hex[:8]}",
    )
    limiter = RateLimiter(settings)

    async def caller(number: int, count: int) -> None:
        for _ in range(count):
            await limiter.enforce(limiter.api, "api", f"user:{number}")

    try:
        await asyncio.gather(*(caller(n, 50) for n in range(callers)))  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller(n, checks) for n in range(callers)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await limiter.close()
        client = redis.asyncio.Redis.from_url(settings.redis_url.get_secret_value())
        async for key in client.scan_iter(match=f"{settings.rate_limit_prefix}:*"):
            await client.delete(key)
        await client.aclose()
    total = callers * checks
    print(
        f"rate limiter: {total:,} checks of 2 limits by {callers} concurrent callers: "
        f"{cpu / total * 1e6:.1f} us of CPU per check, {total / wall:,.0f} checks/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--checks", type=int, default=600, help="per caller")
    options = parser.parse_args()
    uvloop.run(run(options.callers, options.checks))


if __name__ == "__main__":
    main()
