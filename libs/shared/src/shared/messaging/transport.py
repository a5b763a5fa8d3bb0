"""The AMQP connection's socket writes, gathered while the event loop keeps bringing more.

aiormq hands every frame it sends (each publish, each ack, each heartbeat) to the socket
with a write of its own, and on loopback each write is a system call that also runs the
receiving side's TCP path, a large share of a relay's CPU, and RabbitMQ spends as much
again reading one small packet per frame (bench/CHANGES.md). The writer here keeps
what is written and hands it to the transport once the loop turns stop bringing more (at
most ``MOST_FRAMES_HELD`` frames): a batch of publishes leaves in a few writes instead of
one per message, and a lone frame waits two turns of the loop.

It plugs in where aiormq allows it: its ``TransportFactory`` makes the connection's reader
and writer. aio-pika has no public way to hand aiormq the factory: that part is
``shared.compat.aio_pika``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiormq.connection import TransportFactory
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

from shared.compat.aio_pika import RobustConnectionWithTransport

_READ_LIMIT = 2**16  # asyncio.open_connection's default
MOST_FRAMES_HELD = 64


class CoalescingStreamWriter(asyncio.StreamWriter):
    """A StreamWriter whose writes reach the transport gathered (module doc)."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.BaseProtocol,
        reader: asyncio.StreamReader | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(transport, protocol, reader, loop)
        self._loop_ref = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop_ref.call_soon(self._flush_when_quiet, 0)
        self._pending.append(bytes(data))

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def _flush_when_quiet(self, seen: int) -> None:
        # Publishes of a batch reach the writer one per loop turn (each waits on the
        # channel's lock and the frame queue in turn), so "the end of this turn" would hand
        # over one frame at a time. Wait while every turn brings more, up to a bound.
        pending = len(self._pending)
        if seen < pending < MOST_FRAMES_HELD:
            self._loop_ref.call_soon(self._flush_when_quiet, pending)
        else:
            self.flush()

    def flush(self) -> None:
        """Hand what is pending to the transport now."""
        if not self._pending:
            return
        payload = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self.transport.is_closing():
            self.transport.write(payload)

    async def drain(self) -> None:
        self.flush()  # drain means "what I wrote is on its way": it must be in the transport
        await super().drain()

    def write_eof(self) -> None:
        self.flush()
        super().write_eof()

    def close(self) -> None:
        self.flush()
        super().close()


class CoalescingTransportFactory(TransportFactory):
    """Opens the TCP (or TLS, for ``amqps``) connection with a ``CoalescingStreamWriter``."""

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context_provider = kwargs.pop("ssl_context_provider", None)
        tls = await context_provider.get_context() if url.scheme == "amqps" else None
        if url.host is None or url.port is None:
            raise AMQPConnectionError(f"no host and port in the broker URL: {url}")
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_READ_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol, host=url.host, port=url.port, ssl=tls, **kwargs
            )
        except OSError as exc:
            raise AMQPConnectionError(*exc.args) from exc
        return reader, CoalescingStreamWriter(transport, protocol, reader, loop)


class CoalescingRobustConnection(RobustConnectionWithTransport):
    """aio-pika's robust connection, each of its underlying connections opened by the
    factory above."""

    transport_factory = CoalescingTransportFactory
