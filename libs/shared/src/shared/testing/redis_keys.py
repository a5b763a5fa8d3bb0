"""Remove a test run's keys from the local Redis.

Every process keys what it keeps in Redis under its broker namespace
(``shared.settings.redis_key_prefix``: the gateway's rate limits and its known sign-in
addresses, inventory's catalog cache); some of those keys live for days, so a run deletes
its own.
"""

from __future__ import annotations

import logging
import os
import uuid

import redis.asyncio

from shared.settings import BaseServiceSettings, redis_key_prefix

logger = logging.getLogger(__name__)

UNLINK_BATCH = 500


def fresh_sub_namespace() -> str:
    """A namespace no other test meets, inside the run's (``test-<run>.<random>``), so the
    run's clean-up deletes its keys too."""
    return f"{os.environ['COMMERCE_BROKER_NAMESPACE']}.{uuid.uuid4().hex[:12]}"


def namespace_patterns(namespace: str) -> tuple[str, str]:
    """The key patterns of ``namespace`` and of its sub-namespaces (``{namespace}.…``), which
    the test harness gives each platform it starts. Namespaces hold no glob character."""
    prefix = redis_key_prefix(namespace)
    return f"{prefix}:*", f"{prefix}.*"


def local_redis() -> redis.asyncio.Redis:
    """A client of the Redis the run's processes use (``COMMERCE_REDIS_URL`` or its default)."""
    # Also run outside pytest (by the benchmarks), where no environment is set.
    url = BaseServiceSettings(environment="test").redis_url.get_secret_value()
    return redis.asyncio.Redis.from_url(url, socket_timeout=10)


async def delete_redis_namespace(namespace: str) -> int:
    """Delete every key of ``namespace`` and its sub-namespaces; how many were deleted.

    Clean-up must never turn a green run red: a Redis that cannot be reached is logged and
    left as it is."""
    if not namespace:
        return 0
    deleted = 0
    client = local_redis()
    try:
        for pattern in namespace_patterns(namespace):
            batch: list[bytes] = []
            async for key in client.scan_iter(match=pattern, count=UNLINK_BATCH):
                batch.append(key)
                if len(batch) == UNLINK_BATCH:
                    deleted += await client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += await client.unlink(*batch)
    except Exception:
        logger.warning("could not clean the Redis namespace %s", namespace, exc_info=True)
    finally:
        await client.aclose()
    return deleted
