"""A test run's clean-up deletes its own Redis keys and no one else's (the local Redis)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from shared.settings import redis_key_prefix
from shared.testing.redis_keys import delete_redis_namespace, local_redis


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    connection = local_redis()
    yield connection
    await connection.aclose()


async def test_deletes_the_namespace_and_its_sub_namespaces_only(
    client: redis.asyncio.Redis,
) -> None:
    namespace = f"{os.environ['COMMERCE_BROKER_NAMESPACE']}.keys{uuid.uuid4().hex[:6]}"
    own = [
        f"{redis_key_prefix(namespace)}:ratelimit:login:known:abc",
        f"{redis_key_prefix(namespace)}:catalog:gen:lists",
        f"{redis_key_prefix(namespace + '.platform')}:catalog:gen:product:MUG",
    ]
    neighbours = [
        # a namespace that merely starts alike, and a key outside the platform's
        f"{redis_key_prefix(namespace + 'x')}:catalog:gen:lists",
        f"other:{namespace}:catalog:gen:lists",
    ]
    for key in own + neighbours:
        await client.set(key, "1", ex=600)
    try:
        assert await delete_redis_namespace(namespace) == len(own)
        assert await client.exists(*own) == 0
        assert await client.exists(*neighbours) == len(neighbours)
    finally:
        await client.delete(*own, *neighbours)


async def test_an_empty_namespace_deletes_nothing(client: redis.asyncio.Redis) -> None:
    key = f"{redis_key_prefix('')}:{uuid.uuid4().hex}"
    await client.set(key, "1", ex=600)
    try:
        assert await delete_redis_namespace("") == 0
        assert await client.exists(key) == 1
    finally:
        await client.delete(key)
