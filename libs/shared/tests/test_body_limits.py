"""Per-route body limits of ``BodySizeLimitMiddleware``: an upload route may take more."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.types import Receive, Scope, Send

from shared.asgi import BodySizeLimitMiddleware, declared_length, declared_length_refusal


async def _read_all(scope: Scope, receive: Receive, send: Send) -> None:
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _pieces(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _client() -> httpx.AsyncClient:
    app = BodySizeLimitMiddleware(
        _read_all, max_body_bytes=10, route_limits=[(r"/uploads/[^/]+", 100)]
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_route_with_a_limit_of_its_own_takes_more_than_the_default() -> None:
    async with _client() as client:
        assert (await client.post("/uploads/a", content=b"x" * 100)).text == "100"
        assert (await client.post("/uploads/a", content=b"x" * 101)).status_code == 413
        streamed = await client.post("/uploads/a", content=_pieces(b"x" * 60, b"x" * 60))
        assert streamed.status_code == 413


async def test_every_other_path_keeps_the_default_limit() -> None:
    async with _client() as client:
        assert (await client.post("/other", content=b"x" * 11)).status_code == 413
        assert (await client.post("/uploads/a/more", content=b"x" * 11)).status_code == 413
        assert (await client.post("/other", content=b"x" * 10)).text == "10"


def _scope_declaring(length: bytes) -> Scope:
    return {"type": "http", "headers": [(b"content-length", length)]}


def test_a_declared_length_may_carry_any_number_of_leading_zeros() -> None:
    assert declared_length(_scope_declaring(b"0" * 5000 + b"12")) == 12
    assert declared_length(_scope_declaring(b"0" * 5000)) == 0
    assert declared_length_refusal(_scope_declaring(b"0" * 5000 + b"10"), 10) is None


def test_a_declared_length_of_more_digits_than_any_limit_is_413() -> None:
    refusal = declared_length_refusal(_scope_declaring(b"9" * 5000), 10)
    assert refusal is not None
    assert refusal.status_code == 413


def test_a_declared_length_that_is_not_a_number_is_400() -> None:
    for length in (b"12a", b"-1", b"\xb2", b""):
        refusal = declared_length_refusal(_scope_declaring(length), 10)
        assert refusal is not None
        assert refusal.status_code == 400
