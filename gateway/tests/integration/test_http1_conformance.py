"""The upstream pool (``gateway.proxy.http1``) against HTTP/1.1 as a client library must
speak it: chunked bodies, interim answers, answers without a body, ``Connection: close``,
no pipelining, oversized heads and upstreams that close mid-answer.

Each case runs on the standard loop and on uvloop (the gateway's), against a real TCP
server on loopback that reads requests and writes answers byte for byte.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
import uvloop

from gateway.proxy.http1 import (
    MAX_HEAD_BYTES,
    Http1Pool,
    Origin,
    UpstreamResponse,
    UpstreamUnavailable,
)

pytestmark = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])

Runner = Callable[[Awaitable[Any]], Any]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def upstream(handler: Handler) -> AsyncIterator[tuple[Origin, list[int]]]:
    """A server running ``handler`` per connection; yields its origin and a list that gets
    one entry per connection accepted."""
    accepted: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(len(accepted))
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Origin.parse(f"http://127.0.0.1:{port}"), accepted
    finally:
        server.close()


def answering(*answers: bytes) -> Handler:
    """Answers each request on a connection with the next of ``answers`` (request bodies
    are read by their ``content-length``), then closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            writer.write(answer)
            await writer.drain()

    return handler


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if not chunked:
        return head, await reader.readexactly(length)
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size)
        await reader.readexactly(2)
    await reader.readuntil(b"\r\n")
    return head, body


def new_pool(**overrides: Any) -> Http1Pool:
    options: dict[str, Any] = {
        "limit": 8,
        "keepalive_seconds": 5.0,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "total_timeout": 5.0,
    }
    return Http1Pool(**(options | overrides))


async def exchange(
    pool: Http1Pool, origin: Origin, method: str = "GET", body: bytes = b""
) -> tuple[UpstreamResponse, bytes]:
    response = await pool.request(origin, method, b"/", [], body)
    try:
        return response, await response.read()
    finally:
        response.release()


def ok(body: bytes = b"ok") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body)


CHUNKED = (
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n"
    b"1;name=value\r\n \r\n"  # a chunk extension, ignored
    b"5\r\nworld\r\n"
    b"0\r\nx-trailer: yes\r\n\r\n"  # a trailer, not forwarded
)


# -- chunked bodies --------------------------------------------------------------------------


def test_a_chunked_answer_is_read_whole_and_its_connection_reused(run: Runner) -> None:
    async def scenario() -> None:
        async with upstream(answering(CHUNKED, CHUNKED)) as (origin, accepted):
            pool = new_pool()
            for _ in range(2):
                response, body = await exchange(pool, origin)
                assert (response.status, body) == (200, b"hello world")
                assert response.content_length is None
            await pool.close()
        assert len(accepted) == 1

    run(scenario())


def test_a_chunked_answer_arriving_a_byte_at_a_time_is_read_whole(run: Runner) -> None:
    async def byte_by_byte(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        for index in range(len(CHUNKED)):
            writer.write(CHUNKED[index : index + 1])
            await writer.drain()
            await asyncio.sleep(0)

    async def scenario() -> None:
        async with upstream(byte_by_byte) as (origin, _):
            pool = new_pool()
            _, body = await exchange(pool, origin)
            assert body == b"hello world"
            await pool.close()

    run(scenario())


def test_a_streamed_request_body_without_a_length_is_sent_chunked(run: Runner) -> None:
    received: list[tuple[bytes, bytes]] = []

    async def recorder(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))
        writer.write(ok())

    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"first ", b"second ", b"third"):
            yield piece

    async def scenario() -> None:
        async with upstream(recorder) as (origin, _):
            pool = new_pool()
            response = await pool.request_streamed(origin, "POST", b"/", [], pieces(), None)
            assert await response.read() == b"ok"
            response.release()
            await pool.close()
        [(head, body)] = received
        assert b"\r\ntransfer-encoding: chunked\r\n" in head
        assert b"content-length" not in head
        assert body == b"first second third"

    run(scenario())


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: -3\r\n\r\n",
    ],
    ids=["length-and-chunked", "two-lengths", "negative-length"],
)
def test_an_answer_whose_framing_is_ambiguous_is_refused(run: Runner, head: bytes) -> None:
    # Two framings at once is how messages are smuggled: a client must not pick one.
    async def scenario() -> None:
        async with upstream(answering(head + b"0\r\n\r\n")) as (origin, _):
            pool = new_pool()
            with pytest.raises(UpstreamUnavailable):
                await exchange(pool, origin)
            assert pool.stats().open == 0
            await pool.close()

    run(scenario())


# -- interim answers -------------------------------------------------------------------------


def test_interim_answers_before_the_final_one_leave_nothing_behind(run: Runner) -> None:
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nlink: </b.js>; rel=preload\r\n\r\n"
    )

    async def scenario() -> None:
        async with upstream(answering(interim + ok(b"final"), ok(b"next"))) as (origin, seen):
            pool = new_pool()
            response, body = await exchange(pool, origin, "POST", b"payload")
            assert (response.status, body) == (200, b"final")
            assert response.headers == [(b"content-length", b"5")]
            _, body = await exchange(pool, origin)
            assert body == b"next"
            await pool.close()
        assert len(seen) == 1

    run(scenario())


def test_an_upgrade_answer_is_refused_the_proxy_tunnels_nothing(run: Runner) -> None:
    upgrade = (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    )

    async def scenario() -> None:
        async with upstream(answering(upgrade + b"\x81\x02hi")) as (origin, _):
            pool = new_pool()
            with pytest.raises(UpstreamUnavailable):
                await exchange(pool, origin)
            assert pool.stats().open == 0
            await pool.close()

    run(scenario())


# -- answers without a body ------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        # 304's Content-Length is the length the full answer would have: nothing follows.
        b'HTTP/1.1 304 Not Modified\r\netag: "v1"\r\ncontent-length: 1234\r\n\r\n',
        b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n",
    ],
    ids=["204", "304-with-length", "304-chunked"],
)
def test_an_answer_that_has_no_body_ends_at_its_headers(run: Runner, head: bytes) -> None:
    async def scenario() -> None:
        async with upstream(answering(head, ok(b"after"))) as (origin, accepted):
            pool = new_pool()
            response, body = await exchange(pool, origin)
            assert response.status in (204, 304)
            assert body == b""
            _, body = await exchange(pool, origin)
            assert body == b"after"  # the connection went on, nothing was taken for a body
            await pool.close()
        assert len(accepted) == 1

    run(scenario())


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",  # no framing at all: still no body after a HEAD
    ],
    ids=["length", "chunked", "unframed"],
)
def test_a_head_answer_has_no_body_whatever_its_framing_says(run: Runner, head: bytes) -> None:
    async def by_method(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request, _ = await read_request(reader)
            writer.write(head if request.startswith(b"HEAD ") else ok(b"after"))
            await writer.drain()

    async def scenario() -> None:
        async with upstream(by_method) as (origin, accepted):
            pool = new_pool()
            response, body = await exchange(pool, origin, "HEAD")
            assert (response.status, body) == (200, b"")
            _, body = await exchange(pool, origin)
            assert body == b"after"
            await pool.close()
        # An unframed answer says nothing of the connection's future to the parser, which
        # cannot be told the request was a HEAD: that connection is not reused.
        assert len(accepted) == (2 if head.endswith(b"OK\r\n\r\n") else 1)

    run(scenario())


# -- Connection: close -----------------------------------------------------------------------


def test_an_answer_saying_connection_close_is_read_whole_and_not_reused(run: Runner) -> None:
    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 4\r\n\r\nbye!"

    async def scenario() -> None:
        # The upstream keeps the socket open after its answer: the pool must not wait for it.
        async with upstream(answering(closing, closing)) as (origin, accepted):
            pool = new_pool()
            for _ in range(2):
                _, body = await exchange(pool, origin)
                assert body == b"bye!"
            assert pool.stats().idle == 0
            await pool.close()
        assert len(accepted) == 2

    run(scenario())


def test_an_http_1_0_answer_without_keep_alive_is_not_reused(run: Runner) -> None:
    old = b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nold"

    async def scenario() -> None:
        async with upstream(answering(old, old)) as (origin, accepted):
            pool = new_pool()
            for _ in range(2):
                _, body = await exchange(pool, origin)
                assert body == b"old"
            await pool.close()
        assert len(accepted) == 2

    run(scenario())


# -- no pipelining ---------------------------------------------------------------------------


def test_a_second_request_never_shares_a_connection_still_answering(run: Runner) -> None:
    first_read = asyncio.Event()
    second_waiting = asyncio.Event()
    extra_bytes: list[bytes] = []

    async def slow_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        first_read.set()
        await second_waiting.wait()
        # Had the second request been pipelined, it would be here by now.
        with suppress(TimeoutError):
            extra_bytes.append(await asyncio.wait_for(reader.read(1), 0.2))
        writer.write(ok(b"first"))
        await writer.drain()
        await read_request(reader)
        writer.write(ok(b"second"))
        await writer.drain()

    async def scenario() -> None:
        async with upstream(slow_first) as (origin, accepted):
            pool = new_pool(limit=1)
            first = asyncio.create_task(exchange(pool, origin))
            await first_read.wait()
            second = asyncio.create_task(exchange(pool, origin))
            for _ in range(10):
                await asyncio.sleep(0)
            assert pool.stats().waiting == 1
            second_waiting.set()
            assert (await first)[1] == b"first"
            assert (await second)[1] == b"second"
            await pool.close()
        assert extra_bytes == []
        assert len(accepted) == 1

    run(scenario())


def test_bytes_after_the_answer_spoil_the_connection(run: Runner) -> None:
    # An upstream answering a pipeline nobody sent: what follows belongs to no request.
    async def scenario() -> None:
        answers = answering(CHUNKED + ok(b"unasked"), ok(b"fresh"))
        async with upstream(answers) as (origin, accepted):
            pool = new_pool()
            _, body = await exchange(pool, origin)
            assert body == b"hello world"
            _, body = await exchange(pool, origin)
            assert body == b"hello world"  # a new connection, whose first answer is this
            await pool.close()
        assert len(accepted) == 2

    run(scenario())


# -- oversized heads -------------------------------------------------------------------------


def test_an_oversized_answer_head_is_refused_without_being_held(run: Runner) -> None:
    async def endless_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nx-big: ")
        for _ in range(4 * MAX_HEAD_BYTES // 1024):
            if writer.is_closing():
                return
            writer.write(b"a" * 1024)
            await writer.drain()
        writer.write(b"\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the pool hangs up

    async def scenario() -> None:
        async with upstream(endless_header) as (origin, _):
            pool = new_pool()
            with pytest.raises(UpstreamUnavailable, match="head"):
                await exchange(pool, origin)
            assert pool.stats().open == 0
            await pool.close()

    run(scenario())


def test_many_headers_within_the_bound_are_kept_in_order(run: Runner) -> None:
    headers = b"".join(b"x-h%d: %d\r\n" % (index, index) for index in range(200))
    answer = b"HTTP/1.1 200 OK\r\n" + headers + b"content-length: 2\r\n\r\nok"

    async def scenario() -> None:
        async with upstream(answering(answer)) as (origin, _):
            pool = new_pool()
            response, body = await exchange(pool, origin)
            assert body == b"ok"
            assert len(response.headers) == 201
            assert response.headers[199] == (b"x-h199", b"199")
            await pool.close()

    run(scenario())


# -- an upstream that closes mid-answer ------------------------------------------------------


@pytest.mark.parametrize(
    "cut",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly half",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel",
    ],
    ids=["length", "chunked-between-chunks", "chunked-inside-a-chunk"],
)
def test_an_upstream_closing_mid_body_is_an_error_not_a_short_answer(
    run: Runner, cut: bytes
) -> None:
    async def scenario() -> None:
        async with upstream(answering(cut)) as (origin, _):
            pool = new_pool()
            response = await pool.request(origin, "GET", b"/", [], b"")
            assert response.status == 200
            received: list[bytes] = []

            async def drain() -> None:
                received.extend([chunk async for chunk in response.iter_chunks()])

            with pytest.raises(UpstreamUnavailable) as raised:
                await drain()
            response.release()
            assert not raised.value.stale  # bytes of the answer arrived: never retried
            assert len(b"".join(received)) < 100
            assert pool.stats().open == 0
            await pool.close()

    run(scenario())


def test_an_upstream_closing_mid_head_is_unavailable(run: Runner) -> None:
    async def scenario() -> None:
        async with upstream(answering(b"HTTP/1.1 200 OK\r\ncontent-le")) as (origin, _):
            pool = new_pool()
            with pytest.raises(UpstreamUnavailable):
                await exchange(pool, origin)
            await pool.close()

    run(scenario())
