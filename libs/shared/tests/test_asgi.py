"""Request ids and the body size limit, through the real middleware stack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.mark.parametrize(
    "offered",
    ["0f8fad5b-d9cb-469f-a165-70867728950e", "01HZX3V6Y8K2M4N6P8Q0R2S4T6", "req.abc:123_x-y"],
)
async def test_well_formed_request_id_is_echoed(client: httpx.AsyncClient, offered: str) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": offered})
    assert response.headers["x-request-id"] == offered


@pytest.mark.parametrize(
    "offered",
    ["short", "x" * 129, "has space in it", "new\\nline-injection", "<script>alert(1)</script>"],
)
async def test_malformed_request_id_is_replaced(client: httpx.AsyncClient, offered: str) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": offered})
    generated = response.headers["x-request-id"]
    assert generated != offered
    assert len(generated) == 32
    assert int(generated, 16) >= 0


async def test_missing_request_id_is_generated_and_unique(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health/live")).headers["x-request-id"]
    second = (await client.get("/health/live")).headers["x-request-id"]
    assert first != second


async def test_declared_oversized_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/widgets", content=b"x" * 1025, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413


async def test_streamed_oversized_body_is_refused_with_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b'{"name": "' + b"x" * 200

    response = await client.post(
        "/widgets", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "The request body exceeds the limit of 1024 bytes."


async def test_body_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    padding = " " * (1024 - len(b'{"name":"n","quantity":1}'))
    body = ('{"name":"n","quantity":1}' + padding).encode()
    assert len(body) == 1024
    response = await client.post(
        "/widgets", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201


async def test_non_numeric_content_length_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/widgets",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": "12a"},
    )
    assert response.status_code == 400
