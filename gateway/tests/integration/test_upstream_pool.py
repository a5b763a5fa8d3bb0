"""The proxy's HTTP/1.1 pool against a scripted upstream on loopback, on both event loops.

Each scenario runs on the standard loop and on uvloop (the loop the gateway runs on), in a
loop of its own. The upstream is a real TCP server whose answers are written byte for byte,
so keep-alive, stale connections, interim answers and broken answers can be staged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from gateway.config import GatewaySettings
from gateway.proxy.http1 import Http1Pool, Origin, UpstreamTimeout, UpstreamUnavailable
from gateway.proxy.routes import Route
from gateway.proxy.upstream import UpstreamClient

pytestmark = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])

Runner = Callable[[Awaitable[Any]], Any]
# (connection number, request number on that connection, request head) -> bytes to answer,
# or None to close the connection without answering.
Script = Callable[[int, int, bytes], Awaitable[bytes | None]]


def ok(body: bytes = b"ok", *extra: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % len(body)
    return head + b"".join(line + b"\r\n" for line in extra) + b"\r\n" + body


@dataclass
class ScriptedUpstream:
    script: Script
    close_after_answer: bool = False
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def __aenter__(self) -> ScriptedUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def origin(self) -> Origin:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return Origin.parse(f"http://127.0.0.1:{port}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        try:
            for index in range(1_000):
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                answer = await self.script(number, index, head)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def pool(**overrides: Any) -> Http1Pool:
    options: dict[str, Any] = {
        "limit": 8,
        "keepalive_seconds": 5.0,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "total_timeout": 5.0,
    }
    return Http1Pool(**(options | overrides))


async def get(client: Http1Pool, origin: Origin, path: bytes = b"/") -> tuple[int, bytes]:
    response = await client.request(origin, "GET", path, [], b"")
    try:
        return response.status, await response.read()
    finally:
        response.release()


def test_sequential_requests_share_one_keep_alive_connection(run: Runner) -> None:
    async def always_ok(connection: int, index: int, head: bytes) -> bytes:
        return ok(b"answer %d" % index)

    async def scenario() -> None:
        async with ScriptedUpstream(always_ok) as upstream:
            client = pool()
            answers = [await get(client, upstream.origin) for _ in range(3)]
            await client.close()
        assert answers == [(200, b"answer 0"), (200, b"answer 1"), (200, b"answer 2")]
        assert upstream.connections == 1
        assert upstream.requests[0].startswith(b"GET / HTTP/1.1\r\nhost: 127.0.0.1:")

    run(scenario())


def test_a_request_is_written_with_its_headers_body_and_length(run: Runner) -> None:
    async def always_ok(connection: int, index: int, head: bytes) -> bytes:
        return ok()

    async def scenario() -> None:
        async with ScriptedUpstream(always_ok) as upstream:
            client = pool()
            response = await client.request(
                upstream.origin, "POST", b"/a?b=c%20d", [(b"x-one", b"1")], b'{"k": 1}'
            )
            await response.read()
            response.release()
            empty = await client.request(upstream.origin, "POST", b"/e", [], b"")
            await empty.read()
            empty.release()
            await client.close()
        first, second = upstream.requests
        assert first.startswith(b"POST /a?b=c%20d HTTP/1.1\r\n")
        assert b"\r\nx-one: 1\r\n" in first
        assert b"\r\ncontent-length: 8\r\n" in first
        assert first.endswith(b'\r\n\r\n{"k": 1}')
        assert b"\r\ncontent-length: 0\r\n" in second  # a POST always says how long

    run(scenario())


def test_a_stale_keep_alive_connection_is_reported_as_such(run: Runner) -> None:
    async def closes_after_one(connection: int, index: int, head: bytes) -> bytes | None:
        return ok() if index == 0 else None

    async def scenario() -> None:
        async with ScriptedUpstream(closes_after_one) as upstream:
            client = pool()
            assert await get(client, upstream.origin) == (200, b"ok")
            with pytest.raises(UpstreamUnavailable) as broken:
                await get(client, upstream.origin)
            assert broken.value.stale
            assert await get(client, upstream.origin) == (200, b"ok")  # a fresh connection
            stats = client.stats()
            await client.close()
        assert upstream.connections == 2
        assert (stats.connects, stats.stale, stats.open, stats.idle) == (2, 1, 1, 1)

    run(scenario())


def test_a_refused_connection_is_unavailable_and_not_stale(run: Runner) -> None:
    async def scenario() -> None:
        async with ScriptedUpstream(lambda *_: asyncio.sleep(0, ok())) as upstream:
            origin = upstream.origin
        client = pool()
        with pytest.raises(UpstreamUnavailable) as refused:
            await get(client, origin)
        assert not refused.value.stale
        await client.close()

    run(scenario())


def test_an_answer_that_never_comes_times_out_and_closes(run: Runner) -> None:
    async def never(connection: int, index: int, head: bytes) -> bytes:
        await asyncio.sleep(30)
        return ok()

    async def scenario() -> None:
        async with ScriptedUpstream(never) as upstream:
            client = pool(read_timeout=0.2)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(UpstreamTimeout):
                await get(client, upstream.origin)
            assert loop.time() - started < 2.0
            assert not client._open  # the connection is not kept for a late answer
            await client.close()

    run(scenario())


def test_waiting_for_a_free_connection_is_bounded_by_the_deadline(run: Runner) -> None:
    async def always_ok(connection: int, index: int, head: bytes) -> bytes:
        return ok()

    async def scenario() -> None:
        async with ScriptedUpstream(always_ok) as upstream:
            client = pool(limit=1, total_timeout=0.3)
            held = await client.request(upstream.origin, "GET", b"/", [], b"")
            with pytest.raises(UpstreamTimeout):
                await get(client, upstream.origin)
            held.release()
            await client.close()

    run(scenario())


def test_concurrent_requests_never_open_more_than_the_limit(run: Runner) -> None:
    async def slow_ok(connection: int, index: int, head: bytes) -> bytes:
        await asyncio.sleep(0.02)
        return ok(head.split(b" ")[1])

    async def scenario() -> None:
        async with ScriptedUpstream(slow_ok) as upstream:
            client = pool(limit=2)
            paths = [b"/%d" % n for n in range(12)]
            answers = await asyncio.gather(*(get(client, upstream.origin, p) for p in paths))
            await client.close()
        assert answers == [(200, path) for path in paths]
        assert upstream.connections == 2

    run(scenario())


def test_a_head_answer_ends_at_its_headers_and_the_connection_goes_on(run: Runner) -> None:
    async def head_then_get(connection: int, index: int, head: bytes) -> bytes:
        if head.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"  # the GET's length
        return ok(b"the body")

    async def scenario() -> None:
        async with ScriptedUpstream(head_then_get) as upstream:
            client = pool()
            response = await client.request(upstream.origin, "HEAD", b"/", [], b"")
            assert (response.status, response.content_length) == (200, 10)
            assert await response.read() == b""
            response.release()
            assert await get(client, upstream.origin) == (200, b"the body")
            await client.close()
        assert upstream.connections == 1

    run(scenario())


def test_an_answer_delimited_by_the_connection_end_is_read_whole(run: Runner) -> None:
    async def until_close(connection: int, index: int, head: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"

    async def scenario() -> None:
        async with ScriptedUpstream(until_close, close_after_answer=True) as upstream:
            client = pool()
            assert await get(client, upstream.origin) == (200, b"all of it")
            assert await get(client, upstream.origin) == (200, b"all of it")
            await client.close()
        assert upstream.connections == 2  # "connection: close" is honoured

    run(scenario())


def test_interim_answers_are_skipped(run: Runner) -> None:
    async def early_hints(connection: int, index: int, head: bytes) -> bytes:
        return b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n" + ok(b"final")

    async def scenario() -> None:
        async with ScriptedUpstream(early_hints) as upstream:
            client = pool()
            response = await client.request(upstream.origin, "GET", b"/", [], b"")
            assert response.status == 200
            assert response.headers == [(b"content-length", b"5")]
            assert await response.read() == b"final"
            response.release()
            await client.close()

    run(scenario())


def test_a_connection_that_answered_twice_is_not_reused(run: Runner) -> None:
    async def twice(connection: int, index: int, head: bytes) -> bytes:
        return ok(b"one") + ok(b"two")

    async def scenario() -> None:
        async with ScriptedUpstream(twice) as upstream:
            client = pool()
            assert await get(client, upstream.origin) == (200, b"one")
            assert await get(client, upstream.origin) == (200, b"one")
            await client.close()
        assert upstream.connections == 2

    run(scenario())


def test_an_answer_that_is_not_http_is_unavailable(run: Runner) -> None:
    async def garbage(connection: int, index: int, head: bytes) -> bytes:
        return b"SSH-2.0-OpenSSH\r\n\r\n"

    async def scenario() -> None:
        async with ScriptedUpstream(garbage) as upstream:
            client = pool()
            with pytest.raises(UpstreamUnavailable):
                await get(client, upstream.origin)
            assert not client._open
            await client.close()

    run(scenario())


def test_an_idle_connection_past_its_keep_alive_is_not_reused(run: Runner) -> None:
    async def always_ok(connection: int, index: int, head: bytes) -> bytes:
        return ok()

    async def scenario() -> None:
        async with ScriptedUpstream(always_ok) as upstream:
            client = pool(keepalive_seconds=0.05)
            await get(client, upstream.origin)
            await asyncio.sleep(0.15)
            await get(client, upstream.origin)
            await client.close()
        assert upstream.connections == 2

    run(scenario())


def test_an_answer_not_read_whole_closes_its_connection(run: Runner) -> None:
    async def large(connection: int, index: int, head: bytes) -> bytes:
        return ok(b"x" * 2_000_000)

    async def scenario() -> None:
        async with ScriptedUpstream(large) as upstream:
            client = pool()
            response = await client.request(upstream.origin, "GET", b"/", [], b"")
            response.release()  # the client went away before the body
            status, body = await get(client, upstream.origin)
            await client.close()
        assert (status, len(body)) == (200, 2_000_000)
        assert upstream.connections == 2

    run(scenario())


def test_a_large_answer_read_slowly_is_held_back_not_buffered_whole(run: Runner) -> None:
    size = 8 * 1024 * 1024

    async def large(connection: int, index: int, head: bytes) -> bytes:
        return ok(b"y" * size)

    async def scenario() -> None:
        async with ScriptedUpstream(large) as upstream:
            client = pool()
            response = await client.request(upstream.origin, "GET", b"/", [], b"")
            largest = received = 0
            async for chunk in response.iter_chunks():
                largest = max(largest, len(chunk))
                received += len(chunk)
                await asyncio.sleep(0.01)  # a slow client
            response.release()
            await client.close()
        assert received == size
        # Unpaused, the whole answer would pile up between two reads of a slow reader.
        assert largest <= 2 * 1024 * 1024

    run(scenario())


def _scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"gateway"), (b"accept-encoding", b"identity")],
        "client": ("10.0.0.7", 5000),
        "scheme": "http",
        "state": {"request_id": "r-1"},
    }


async def _forward(client: UpstreamClient, method: str, upstream: Origin) -> list[Any]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    route = Route("/api", f"http://127.0.0.1:{upstream.port}")
    await client.forward(_scope(method, "/api/x"), receive, send, route)
    return sent


def test_the_proxy_retries_a_stale_connection_only_for_idempotent_methods(
    run: Runner,
) -> None:
    async def closes_after_one(connection: int, index: int, head: bytes) -> bytes | None:
        return ok(b"fine") if index == 0 else None

    async def scenario() -> None:
        async with ScriptedUpstream(closes_after_one) as upstream:
            client = UpstreamClient(GatewaySettings())
            await client.start()
            assert (await _forward(client, "GET", upstream.origin))[0]["status"] == 200
            retried = await _forward(client, "GET", upstream.origin)  # stale, then fresh
            assert (retried[0]["status"], retried[1]["body"]) == (200, b"fine")
            seen = len(upstream.requests)
            refused = await _forward(client, "POST", upstream.origin)  # stale: not sent again
            await client.close()
        assert refused[0]["status"] == 503
        assert len(upstream.requests) == seen + 1
        forwarded = upstream.requests[0]
        assert b"\r\nx-forwarded-for: 10.0.0.7\r\n" in forwarded
        assert b"\r\nx-request-id: r-1\r\n" in forwarded
        assert b"\r\nhost: gateway" not in forwarded  # the upstream's own Host is sent

    run(scenario())
