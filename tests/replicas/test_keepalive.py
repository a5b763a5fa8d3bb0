"""HAProxy with the generated configuration never sends a request on a connection to a
replica that it kept from an earlier request (docs/replicas.md, "A cut without an answer").

The replicas here are stand-ins that answer the first request of a connection and close the
connection, unanswered, when a second one arrives on it: what a replica's keep-alive timeout
or drain does when it crosses a request. Kept alive, such a connection made HAProxy cut the
client's own kept-alive connection without an answer, and a POST without an Idempotency-Key
was lost; with a connection per request, every request is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from asyncio.subprocess import DEVNULL
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from infra.replicas.topology import Layout, haproxy_config
from shared.testing.ports import free_port
from tests.replicas.harness import HAPROXY, haproxy_available

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="HAProxy is not installed")

REQUESTS = 8
UP_SECONDS = 15.0
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def _one_request_per_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    answered = 0
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while head := await reader.readuntil(b"\r\n\r\n"):
            if answered:
                writer.transport.abort()  # the kept connection's end, crossing a request
                return
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            writer.write(OK)
            await writer.drain()
            answered += 1
    writer.close()


@contextlib.asynccontextmanager
async def _load_balancer(tmp_path: Path) -> AsyncIterator[Layout]:
    layout = Layout.on_free_ports(free_port)
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(layout))
    servers = [
        await asyncio.start_server(_one_request_per_connection, "127.0.0.1", port)
        for replica in layout.replicas_of("gateway")
        for port in {replica.port, replica.probe_port}
    ]
    lb = await asyncio.create_subprocess_exec(
        HAPROXY, "-db", "-f", str(config), stdout=DEVNULL, stderr=DEVNULL
    )
    try:
        yield layout
    finally:
        lb.terminate()
        await lb.wait()
        for server in servers:
            server.close()


async def test_a_post_without_key_is_answered_though_replicas_close_kept_connections(
    tmp_path: Path,
) -> None:
    async with (
        _load_balancer(tmp_path) as layout,
        httpx.AsyncClient(base_url=layout.gateway_url, timeout=10) as client,
    ):
        async with asyncio.timeout(UP_SECONDS):  # HAProxy listening, the stand-ins in rotation
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        answers = []
        for n in range(REQUESTS):  # on the client's one kept-alive connection
            reply = await client.post("/api/v1/auth/register", json={"n": n})
            answers.append(reply.status_code)
    assert answers == [200] * REQUESTS
