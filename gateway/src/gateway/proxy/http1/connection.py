"""One pooled TCP connection to an upstream: writes a request, parses its answer (httptools
calls the ``on_*`` methods) and wakes the exchange waiting on it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

import httptools

from gateway.proxy.http1.errors import Origin, UpstreamError, UpstreamTimeout, UpstreamUnavailable

if TYPE_CHECKING:
    from gateway.proxy.http1.pool import Http1Pool

_READ_BUFFER_HIGH = 262_144  # bytes of answer buffered before the socket is paused
# Bytes an answer's head (its interim answers included) may take: llhttp sets no bound, and
# each header is held until the head is complete.
MAX_HEAD_BYTES = 65_536
_NO_BODY_STATUSES = frozenset({204, 304})


class Connection(asyncio.Protocol):
    """One TCP connection, one exchange at a time. httptools calls the ``on_*`` methods."""

    def __init__(self, pool: Http1Pool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.exchanges = 0  # answers completed on this connection
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._head_request = False
        self._got_bytes = False
        self._head_bytes = 0  # bytes received while the answer's head was incomplete
        self._spoiled = False  # bytes beyond the one answer asked for arrived
        self._waiter: asyncio.Future[None] | None = None
        self._error: UpstreamError | None = None
        self._reading_paused = False
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused
        self._body_unsent = False  # the upstream answered before the whole body was sent
        # The answer being read.
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.content_length: int | None = None
        self._chunked = False
        self.headers_done = False
        self.message_done = False
        self.keep_alive = False
        self.chunks: deque[bytes] = deque()
        self._buffered = 0

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # bytes nobody asked for: the connection cannot be trusted again
            self.close()
            return
        self._got_bytes = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamUnavailable(f"malformed answer from the upstream: {exc}"))
            self.close()
            return
        if not self.headers_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(UpstreamUnavailable("the upstream's answer head is too large"))
                self.close()
                self._wake()
                return
        if self._buffered > _READ_BUFFER_HIGH and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.resume_writing()
        self.pool._forget(self)
        if self._parser is not None and not self.message_done:
            if self.headers_done and self._until_close():
                self.message_done = True  # an answer delimited by the end of the connection
                self.keep_alive = False
            else:
                stale = not self._got_bytes and self.exchanges > 0
                if stale:
                    self.pool.stale += 1
                self._fail(
                    UpstreamUnavailable(f"upstream closed the connection: {exc!r}", stale=stale)
                )
        self._wake()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.message_done:
            # A second answer to one request: the connection cannot be trusted again, and
            # nothing of that answer reaches the one already read.
            self._spoiled = True
            return
        self.headers = []
        self.content_length = None
        self._chunked = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._spoiled:
            return
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            self.content_length = int(value)  # llhttp has validated it
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            self._chunked = True

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        if self._spoiled:
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer (103 Early Hints): the real one follows
        self.status = status
        self.headers_done = True
        self.keep_alive = self._parser.should_keep_alive()
        if self._head_request:
            # llhttp cannot be told a HEAD answer has no body; its Content-Length is the
            # length of the GET's. The next answer gets a parser of its own.
            self.message_done = True

    def on_body(self, body: bytes) -> None:
        if not self.message_done:
            self.chunks.append(body)
            self._buffered += len(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.message_done = True

    # -- used by the pool and the response -------------------------------------------------

    def _until_close(self) -> bool:
        return (
            self.content_length is None
            and not self._chunked
            and self.status not in _NO_BODY_STATUSES
            and not self._head_request
        )

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None:
            self._error = error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send(self, request: bytes, *, head: bool) -> None:
        """Write a whole request and get ready to parse its answer."""
        self._parser = httptools.HttpResponseParser(self)
        self._head_request = head
        self._got_bytes = False
        self._head_bytes = 0
        self._spoiled = False
        self._body_unsent = False
        self._error = None
        self.status = 0
        self.headers_done = self.message_done = self.keep_alive = False
        self.chunks.clear()
        self._buffered = 0
        assert self.transport is not None
        self.transport.write(request)

    async def write_body(self, body: AsyncIterator[bytes], *, chunked: bool) -> None:
        """Write a request body as it arrives, waiting whenever the socket's buffer is full."""
        assert self.transport is not None
        async for piece in body:
            if self.closed:
                raise UpstreamUnavailable("upstream closed the connection during the body")
            self.transport.write(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
            if self._writable is not None:
                await self._writable
        if chunked:
            self.transport.write(b"0\r\n\r\n")

    async def wait(self, deadline: float, read_timeout: float) -> None:
        """Until something arrives (or the connection ends); UpstreamTimeout past the read
        timeout or the deadline, whichever comes first."""
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        timeout = min(read_timeout, deadline - loop.time())
        if timeout <= 0:
            self.close()
            raise UpstreamTimeout("the upstream did not answer in time")
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, expire, waiter)
        try:
            await waiter
        except UpstreamTimeout:
            self.close()
            raise
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None:
            raise self._error

    def take_chunks(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        self._buffered = 0
        if self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def reusable(self, now: float) -> bool:
        return not self.closed and now - self.idle_since < self.pool.keepalive_seconds

    @property
    def reusable_after_answer(self) -> bool:
        """The answer was read whole, the upstream keeps the connection, nothing more came."""
        return self.message_done and self.keep_alive and not self._spoiled and not self._body_unsent

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self.pool._forget(self)


def expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("the upstream did not answer in time"))
