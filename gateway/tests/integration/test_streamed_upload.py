"""Media uploads stream through the gateway: never buffered, limited to their own size.

The upstream here is a real uvicorn server that records what reached it and when; the
client writes over a raw socket, so the test decides when each byte is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from gateway.config import GatewaySettings

MiB = 1_048_576
UPLOAD = "/api/v1/products/SKU-1/media"


@dataclass
class Upload:
    received: int = 0
    disconnected: bool = False
    finished: bool = False
    progress: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class MediaUpstream:
    """Reads an upload piece by piece; refuses after ``refuse_after`` bytes when set."""

    uploads: list[Upload] = field(default_factory=list)
    refuse_after: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upload = Upload()
        self.uploads.append(upload)
        digest = hashlib.sha256()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                upload.disconnected = True
                upload.progress.set()
                return
            chunk = message.get("body", b"")
            digest.update(chunk)
            upload.received += len(chunk)
            upload.progress.set()
            if self.refuse_after is not None and upload.received >= self.refuse_after:
                await _answer(send, 415, {"detail": "not an image"})
                return
            if not message.get("more_body", False):
                break
        upload.finished = True
        await _answer(send, 201, {"size": upload.received, "sha256": digest.hexdigest()})


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def media_upstream() -> AsyncIterator[tuple[MediaUpstream, str]]:
    upstream = MediaUpstream()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(upstream, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield upstream, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


Served = Callable[..., AbstractAsyncContextManager[GatewaySettings]]


def _head(length: int | None, path: str = UPLOAD) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST {path} HTTP/1.1\r\nHost: gateway\r\nContent-Type: image/png\r\n{framing}\r\n\r\n"
    ).encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def _status(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    return int(head.split(b" ", 2)[1]), head


async def _settled(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


async def test_an_upload_reaches_the_upstream_before_the_client_has_sent_it_all(
    served_gateway: Served, media_upstream: tuple[MediaUpstream, str]
) -> None:
    upstream, url = media_upstream
    async with served_gateway(routes={"/api/v1/products": url}) as settings:
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        body = b"\x89PNG\r\n\x1a\n" + b"x" * (3 * MiB - 8)
        writer.write(_head(len(body)) + body[:MiB])
        await writer.drain()
        # Only the first MiB is sent: a gateway that buffered the body would forward nothing.
        assert await _settled(lambda: bool(upstream.uploads) and upstream.uploads[0].received > 0)
        assert not upstream.uploads[0].finished
        writer.write(body[MiB:])
        await writer.drain()
        status, _ = await _status(reader)
        answer = orjson.loads(await reader.read(200))
        writer.close()
    assert status == 201
    assert answer == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


async def test_an_upload_may_exceed_the_default_body_limit_but_not_its_own(
    served_gateway: Served, media_upstream: tuple[MediaUpstream, str]
) -> None:
    upstream, url = media_upstream
    overrides = {"routes": {"/api/v1/products": url}, "media_upload_max_bytes": 4 * MiB}
    async with served_gateway(**overrides) as settings:
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        writer.write(_head(3 * MiB) + b"y" * (3 * MiB))
        assert (await _status(reader))[0] == 201
        writer.close()

        # Declared over the media limit: refused before a byte is read or forwarded.
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        writer.write(_head(4 * MiB + 1))
        status, head = await _status(reader)
        writer.close()
        assert status == 413
        assert b"application/problem+json" in head
        assert len(upstream.uploads) == 1

        # Another route keeps the default limit (1 MiB).
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        writer.write(_head(2 * MiB, path="/api/v1/products/SKU-1/other"))
        assert (await _status(reader))[0] == 413
        writer.close()


async def test_a_chunked_upload_over_the_limit_is_413_and_the_upstream_sees_it_cut_short(
    served_gateway: Served, media_upstream: tuple[MediaUpstream, str]
) -> None:
    upstream, url = media_upstream
    overrides = {"routes": {"/api/v1/products": url}, "media_upload_max_bytes": MiB}
    async with served_gateway(**overrides) as settings:
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        writer.write(_head(None))
        for _ in range(20):  # 1.25 MiB, never ended: only a gateway that stopped can answer
            writer.write(_chunk(b"z" * 65536))
        await writer.drain()
        status, _ = await _status(reader)
        writer.close()
        assert status == 413
        assert await _settled(lambda: upstream.uploads[0].disconnected)
        assert upstream.uploads[0].received <= MiB
        assert not upstream.uploads[0].finished


async def test_an_early_refusal_by_the_upstream_reaches_a_client_still_sending(
    served_gateway: Served, media_upstream: tuple[MediaUpstream, str]
) -> None:
    upstream, url = media_upstream
    upstream.refuse_after = 1
    async with served_gateway(routes={"/api/v1/products": url}) as settings:
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        writer.write(_head(5 * MiB) + b"GIF89a" + b"g" * 65536)
        await writer.drain()
        status, _ = await _status(reader)
        writer.close()
    assert status == 415
    assert upstream.uploads[0].received < 5 * MiB


@pytest.mark.parametrize("declared", [True, False])
async def test_a_client_gone_mid_upload_cuts_the_upstream_short(
    served_gateway: Served, media_upstream: tuple[MediaUpstream, str], declared: bool
) -> None:
    upstream, url = media_upstream
    async with served_gateway(routes={"/api/v1/products": url}) as settings:
        _, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        piece = b"\x89PNG\r\n\x1a\n" + b"p" * 100_000
        writer.write(_head(2 * MiB if declared else None))
        writer.write(piece if declared else _chunk(piece))
        await writer.drain()
        assert await _settled(lambda: bool(upstream.uploads) and upstream.uploads[0].received > 0)
        writer.close()
        assert await _settled(lambda: upstream.uploads[0].disconnected)
    assert not upstream.uploads[0].finished


async def test_a_client_that_expects_100_continue_gets_it_and_its_upload_through(
    served_gateway: Served, media_upstream: tuple[MediaUpstream, str]
) -> None:
    upstream, url = media_upstream
    async with served_gateway(routes={"/api/v1/products": url}) as settings:
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        body = b"\x89PNG\r\n\x1a\n" + b"c" * (2 * MiB)
        head = _head(len(body)).replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n")
        writer.write(head)  # as curl does: the body only once the server asks for it
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(body)
        status, _ = await _status(reader)
        writer.close()
    assert status == 201
    assert upstream.uploads[0].received == len(body)
