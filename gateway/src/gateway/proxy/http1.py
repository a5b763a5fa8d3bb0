"""The proxy's upstream client: pooled keep-alive HTTP/1.1 connections, answers parsed by
httptools (llhttp, the parser uvicorn itself runs on).

Why not aiohttp's client: its exchange builds a request object, header multidicts, URL
handling, timers, tracing hooks and a stream reader per request, a large share of the
gateway's CPU per proxied request (bench/CHANGES.md). The proxy needs none of that: the
request arrives as bytes from uvicorn and leaves as bytes, the answer's headers go back as
the ASGI list they already are. What this module does by hand is only the part that is the
proxy's own: writing one request line and its headers, and keeping a pool.

What it guarantees is the contract of ``Http1Pool``.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

_READ_BUFFER_HIGH = 262_144  # bytes of answer buffered before the socket is paused
# Bytes an answer's head (its interim answers included) may take: llhttp sets no bound, and
# each header is held until the head is complete.
MAX_HEAD_BYTES = 65_536
_NO_BODY_STATUSES = frozenset({204, 304})


class UpstreamError(Exception):
    """The exchange with the upstream failed."""


class UpstreamUnavailable(UpstreamError):
    """Refused, reset, closed early, or an answer that is not HTTP.

    ``stale``: a reused keep-alive connection broke before any byte of the answer arrived,
    so the upstream cannot have acted on the request unless it closed mid-request; safe to
    retry for an idempotent method.
    """

    def __init__(self, message: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The connect, a read or the whole exchange took longer than allowed."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an upstream is, parsed once from its ``scheme://host:port``."""

    host: str
    port: int
    tls: bool
    host_header: bytes

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        return cls(parts.hostname, port, tls, parts.netloc.encode("ascii"))


@dataclass(frozen=True, slots=True)
class PoolStats:
    """The pool's state at one moment, and its counts since it started (for ``/metrics``)."""

    open: int
    idle: int
    connecting: int
    waiting: int  # requests waiting for a connection slot
    connects: int  # connections opened
    stale: int  # reused connections found broken before any byte of their answer


class _Connection(asyncio.Protocol):
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
        timer = loop.call_later(timeout, _expire, waiter)
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


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("the upstream did not answer in time"))


class UpstreamResponse:
    """An answer whose status and headers have arrived; its body is read or streamed, then
    ``release()`` gives the connection back (or closes it if the body was not read whole)."""

    def __init__(self, connection: _Connection, deadline: float, read_timeout: float) -> None:
        self._connection = connection
        self._deadline = deadline
        self._read_timeout = read_timeout
        self._released = False
        self.status = connection.status
        self.headers = connection.headers
        self.content_length = connection.content_length

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self.iter_chunks()]
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        connection = self._connection
        while True:
            # Wait only with nothing buffered: while the reader was away, more may have
            # arrived and paused the socket, and no more data would come to wake it.
            if connection.chunks:
                yield connection.take_chunks()
            elif connection.message_done:
                return
            else:
                await connection.wait(self._deadline, self._read_timeout)

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        connection = self._connection
        connection.pool._release(connection, connection.reusable_after_answer)


class Http1Pool:
    """Keep-alive connections to the upstreams, shared by every request of the process.

    What it guarantees:
    - at most ``limit`` connections open across every upstream; a request waits for a slot
      (within its deadline), and an idle connection to another upstream is closed to make one;
    - an idle connection is reused only within ``keepalive_seconds`` of its last answer, and
      never after it saw bytes or an end it was not waiting for;
    - the connect (``UpstreamUnavailable``), each read and the whole exchange
      (``UpstreamTimeout``) are bounded;
    - a connection that breaks before any byte of its answer is reported as ``stale`` when it
      was a reused one, so that the caller may retry an idempotent request once;
    - a body is buffered up to a bound, then the socket is paused until the reader catches up;
    - a streamed request body (``request_streamed``) is written as it arrives, each piece only
      once the socket has taken the previous ones, so no more than a socket buffer of it is
      held.
    """

    def __init__(
        self,
        *,
        limit: int,
        keepalive_seconds: float,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
    ) -> None:
        self.limit = limit
        self.keepalive_seconds = keepalive_seconds
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._connecting = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._tls: ssl.SSLContext | None = None
        self._closing = False
        self.connects = 0
        self.stale = 0

    def stats(self) -> PoolStats:
        waiting = sum(1 for waiter in self._slot_waiters if not waiter.done())
        return PoolStats(
            open=len(self._open),
            idle=sum(len(connections) for connections in self._idle.values()),
            connecting=self._connecting,
            waiting=waiting,
            connects=self.connects,
            stale=self.stale,
        )

    async def request(
        self,
        origin: Origin,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> UpstreamResponse:
        """Send a request and wait for its status and headers.

        ``target`` is the path and query as the client sent them, ``headers`` are forwarded
        as they are (the caller has removed what must not be). ``Host`` and, when there is a
        body or the method usually has one, ``Content-Length`` are added here.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        connection = await self._acquire(origin, deadline)
        lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", origin.host_header]
        for name, value in headers:
            lines += (b"\r\n", name, b": ", value)
        if body or method not in ("GET", "HEAD"):
            lines += (b"\r\ncontent-length: ", str(len(body)).encode("ascii"))
        lines += (b"\r\n\r\n", body)
        try:
            connection.send(b"".join(lines), head=method == "HEAD")
            while not connection.headers_done:
                await connection.wait(deadline, self.read_timeout)
        except BaseException:
            connection.close()
            raise
        connection.exchanges += 1
        return UpstreamResponse(connection, deadline, self.read_timeout)

    async def request_streamed(
        self,
        origin: Origin,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes],
        length: int | None,
    ) -> UpstreamResponse:
        """As ``request``, with a body forwarded as it arrives: ``length`` bytes as declared
        by the client, or chunked when it declared none. An error of ``body`` (the client
        went away, or sent too much) propagates and closes the connection, so the upstream
        sees the body end short. The upstream may answer before the whole body is sent (a
        refusal): the rest is not read, and the connection is not reused.

        Only the whole exchange's deadline bounds the upload; the read timeout applies once
        the body is sent (the upstream has nothing to say while it arrives).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        connection = await self._acquire(origin, deadline)
        lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", origin.host_header]
        for name, value in headers:
            lines += (b"\r\n", name, b": ", value)
        if length is None:
            lines.append(b"\r\ntransfer-encoding: chunked")
        else:
            lines += (b"\r\ncontent-length: ", str(length).encode("ascii"))
        lines.append(b"\r\n\r\n")
        sender: asyncio.Task[None] | None = None
        try:
            connection.send(b"".join(lines), head=False)
            sender = asyncio.create_task(connection.write_body(body, chunked=length is None))
            sender.add_done_callback(lambda _: connection._wake())
            while not connection.headers_done:
                if sender.done():
                    sender.result()  # the client's failure, if any
                await connection.wait(deadline, self.read_timeout if sender.done() else math.inf)
        except BaseException:
            connection.close()
            raise
        finally:
            if sender is not None:
                if not sender.done():
                    connection._body_unsent = True
                    sender.cancel()
                    await asyncio.wait([sender])
                if not sender.cancelled():
                    sender.exception()  # moot once the upstream has answered: retrieved
        connection.exchanges += 1
        return UpstreamResponse(connection, deadline, self.read_timeout)

    async def close(self) -> None:
        self._closing = True
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_exception(UpstreamUnavailable("the upstream client is closed"))

    # -- the pool ----------------------------------------------------------------------------

    async def _acquire(self, origin: Origin, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        while True:
            if self._closing:
                raise UpstreamUnavailable("the upstream client is closed")
            idle = self._idle.get(origin)
            now = time.monotonic()
            while idle:
                connection = idle.pop()  # the most recently used: the least likely closed
                if connection.reusable(now):
                    return connection
                connection.close()
            if len(self._open) + self._connecting < self.limit:
                return await self._connect(origin, deadline)
            if not self._close_one_idle():
                waiter = loop.create_future()
                self._slot_waiters.append(waiter)
                timer = loop.call_later(max(0.0, deadline - loop.time()), _expire, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()

    async def _connect(self, origin: Origin, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        self._connecting += 1
        try:
            timeout = min(self.connect_timeout, deadline - loop.time())
            async with asyncio.timeout(max(0.0, timeout)):
                _, connection = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    origin.host,
                    origin.port,
                    ssl=self._tls_context() if origin.tls else None,
                )
        except BaseException as exc:
            self._connecting -= 1
            self._wake_one()  # the slot this connection would have taken is free again
            # A connect that times out is an upstream out of reach, as one refusing is (503);
            # only an upstream that took the request and is slow to answer is a 504.
            if isinstance(exc, OSError | TimeoutError):
                where = f"{origin.host}:{origin.port}"
                raise UpstreamUnavailable(f"cannot connect to {where}: {exc!r}") from exc
            raise
        self._connecting -= 1
        self.connects += 1
        self._open.add(connection)
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def _release(self, connection: _Connection, reusable: bool) -> None:
        if reusable and not connection.closed and not self._closing:
            connection.idle_since = time.monotonic()
            connection._parser = None
            self._idle.setdefault(connection.origin, []).append(connection)
            self._wake_one()
        else:
            connection.close()

    def _forget(self, connection: _Connection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            idle = self._idle.get(connection.origin)
            if idle and connection in idle:
                idle.remove(connection)
            self._wake_one()

    def _close_one_idle(self) -> bool:
        oldest: _Connection | None = None
        for connections in self._idle.values():
            if connections and (oldest is None or connections[0].idle_since < oldest.idle_since):
                oldest = connections[0]
        if oldest is None:
            return False
        oldest.close()
        return True

    def _wake_one(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
