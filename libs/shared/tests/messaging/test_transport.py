"""AMQP socket writes gathered per loop turn, against a TCP peer on loopback and the broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from yarl import URL

from shared.messaging.transport import (
    MOST_FRAMES_HELD,
    CoalescingRobustConnection,
    CoalescingStreamWriter,
    CoalescingTransportFactory,
)

from .conftest import Harness, wait_until


@pytest.fixture
async def peer() -> AsyncIterator[tuple[URL, asyncio.Queue[bytes]]]:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65_536):
            await received.put(data)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield URL(f"amqp://guest:guest@127.0.0.1:{port}/"), received
    server.close()


async def _watched_writer(url: URL) -> tuple[CoalescingStreamWriter, list[bytes]]:
    """A writer from the factory, and the list of what it hands to its transport."""
    _, writer = await CoalescingTransportFactory().create(url)
    assert isinstance(writer, CoalescingStreamWriter)
    handed: list[bytes] = []
    write = writer.transport.write

    def watched(data: bytes | bytearray | memoryview) -> None:
        handed.append(bytes(data))
        write(data)

    writer.transport.write = watched  # type: ignore[method-assign]
    return writer, handed


async def _received(queue: asyncio.Queue[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += await asyncio.wait_for(queue.get(), 5)
    return data


async def test_writes_of_one_loop_turn_reach_the_transport_once_in_order(
    peer: tuple[URL, asyncio.Queue[bytes]],
) -> None:
    url, received = peer
    writer, handed = await _watched_writer(url)
    for n in range(50):
        writer.write(b"frame %02d;" % n)
    assert handed == []  # nothing leaves before the turn ends
    expected = b"".join(b"frame %02d;" % n for n in range(50))
    assert await _received(received, len(expected)) == expected
    assert handed == [expected]

    writer.write(b"then one more")
    await writer.drain()  # drain hands it over at once
    assert handed[-1] == b"then one more"
    writer.write(b" and the last")
    writer.close()  # close sends what is pending first
    assert await _received(received, 26) == b"then one more and the last"
    assert len(handed) == 3


async def test_the_broker_connection_opens_its_connections_with_the_coalescing_factory(
    harness: Harness,
) -> None:
    broker = await harness.broker()
    connection = broker.connection
    assert isinstance(connection, CoalescingRobustConnection)
    assert isinstance(connection.kwargs["transport_factory"], CoalescingTransportFactory)
    # Events go out, are confirmed and consumed over it (the rest of the suite runs on it).
    await harness.consumer("coalescing", broker=broker)
    ids = await harness.emit(30)
    await harness.relay(broker=broker)
    await wait_until(lambda: harness.applied("coalescing", 30), what="30 handled")
    assert await harness.effects("coalescing") == dict.fromkeys(ids, 1)


async def test_frames_arriving_one_per_turn_are_gathered_up_to_a_bound(
    peer: tuple[URL, asyncio.Queue[bytes]],
) -> None:
    # As a batch of publishes reaches the writer: one frame per loop turn.
    url, received = peer
    writer, handed_bytes = await _watched_writer(url)
    for _ in range(200):
        writer.write(b"x" * 10)
        await asyncio.sleep(0)
    await _received(received, 2_000)
    handed = [len(data) for data in handed_bytes]
    assert sum(handed) == 2_000
    assert len(handed) < 10  # not one write per frame
    assert max(handed) <= MOST_FRAMES_HELD * 10
    writer.close()
