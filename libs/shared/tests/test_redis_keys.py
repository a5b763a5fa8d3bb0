"""A test run's clean-up deletes its own Redis keys and no one else's (the local Redis)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from shared.testing.redis_keys import DEFAULT_REDIS_URL, delete_redis_namespace


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    connection = redis.asyncio.Redis.from_url(
        os.environ.get("COMMERCE_REDIS_URL", DEFAULT_REDIS_URL)
    )
    yield connection
    await connection.aclose()


async def test_deletes_the_namespace_and_its_sub_namespaces_only(
    client: redis.asyncio.Redis,
) -> None:
    namespace = f"{os.environ['COMMERCE_BROKER_NAMESPACE']}.keys{uuid.uuid4().hex[:6]}"
    own = [
        f"commerce:{namespace}:ratelimit:login:known:abc",
        f"commerce:{namespace}:catalog:gen:lists",
        f"commerce:{namespace}.platform:catalog:gen:product:MUG",
    ]
    neighbours = [
        f"commerce:{namespace}x:catalog:gen:lists",  # a namespace that merely starts alike
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
    key = f"commerce::{uuid.uuid4().hex}"
    await client.set(key, "1", ex=600)
    try:
        assert await delete_redis_namespace("") == 0
        assert await client.exists(key) == 1
    finally:
        await client.delete(key)
