"""The pool of upstream connections, and the answers it hands out."""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.proxy.http1.connection import Connection, expire
from gateway.proxy.http1.errors import Origin, UpstreamUnavailable


@dataclass(frozen=True, slots=True)
class PoolStats:
    """The pool's state at one moment, and its counts since it started (for ``/metrics``)."""

    open: int
    idle: int
    connecting: int
    waiting: int  # requests waiting for a connection slot
    connects: int  # connections opened
    stale: int  # reused connections found broken before any byte of their answer


class UpstreamResponse:
    """An answer whose status and headers have arrived; its body is read or streamed, then
    ``release()`` gives the connection back (or closes it if the body was not read whole)."""

    def __init__(self, connection: Connection, deadline: float, read_timeout: float) -> None:
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
        self._idle: dict[Origin, list[Connection]] = {}
        self._open: set[Connection] = set()
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

    async def _acquire(self, origin: Origin, deadline: float) -> Connection:
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
                timer = loop.call_later(max(0.0, deadline - loop.time()), expire, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()

    async def _connect(self, origin: Origin, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        self._connecting += 1
        try:
            timeout = min(self.connect_timeout, deadline - loop.time())
            async with asyncio.timeout(max(0.0, timeout)):
                _, connection = await loop.create_connection(
                    lambda: Connection(self, origin),
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

    def _release(self, connection: Connection, reusable: bool) -> None:
        if reusable and not connection.closed and not self._closing:
            connection.idle_since = time.monotonic()
            connection._parser = None
            self._idle.setdefault(connection.origin, []).append(connection)
            self._wake_one()
        else:
            connection.close()

    def _forget(self, connection: Connection) -> None:
        if connection in self._open:
            self._open.discard(connection)
            idle = self._idle.get(connection.origin)
            if idle and connection in idle:
                idle.remove(connection)
            self._wake_one()

    def _close_one_idle(self) -> bool:
        oldest: Connection | None = None
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
