"""uvicorn's httptools protocol with the limits it lacks (docs/edge.md, public port limits).

httptools (llhttp) enforces none, and uvicorn offers no option for them; its h11 protocol
bounds sizes only, and is slower. So the gateway keeps httptools and adds the limits on the
parser callbacks uvicorn already runs (``tests/unit/test_compat_uvicorn.py`` checks the
internals this relies on):

- a request target over ``max_request_line``: 414;
- a header section over ``max_header_bytes``, counted as bytes arrive: 431;
- headers not complete ``header_timeout`` seconds after the connection opened or the
  request's first byte: 408 (or a silent close when no request had begun);
- a chunked body's trailer fields are dropped, and trailers or framing past the header
  limit are 431. These refusals are problem+json; uvicorn's parse-error 400 stays as it is.
"""

from __future__ import annotations

import asyncio
import http
from asyncio import TimerHandle
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.context import new_request_id
from shared.errors import PROBLEM_CONTENT_TYPE, Problem

# The uvicorn release this module was read against; tests/unit/test_compat_uvicorn.py fails
# on any other, so that an upgrade is a review of the hooks below, not a surprise.
REVIEWED_UVICORN = "0.54.0"
# Bytes of a header line besides its name and value: ": " and CRLF.
_LINE_OVERHEAD = 4
# Framing a chunk needs: its size in hex and two CRLFs, with room for a short extension.
_CHUNK_FRAMING = 64
# What the refusals this module makes say; uvicorn's own 400 (a request it cannot parse)
# keeps its plain text.
_REFUSALS = {
    408: "The request's headers did not arrive in time.",
    414: "The request target is longer than this server accepts.",
    431: "The request's header section is larger than this server accepts.",
}


class RequestRefused(Exception):
    """Raised in a parser callback to stop parsing; the answer is ``status``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Configured by subclassing through ``limited_protocol``."""

    max_request_line = 8190
    max_header_bytes = 32_768
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Byte counts on the connection: received so far, before the chunk being parsed, and
        # around the chunk in which the pending request's head began (where in it, the
        # parser does not say).
        self._received = 0
        self._chunk_start = 0
        self._head_first = 0
        self._head_after = 0
        self._in_head = False  # a request began and its headers are not complete yet
        # The body being read: bytes received when its head completed, its data bytes, its
        # chunks and its trailer fields' bytes so far (everything else received meanwhile is
        # framing or trailers still arriving).
        self._in_body = False
        self._body_from = 0
        self._body_data = 0
        self._body_chunks = 0
        self._trailer_bytes = 0
        self._head_since = 0.0  # when the connection opened or the pending request began
        self._refusal: int | None = None
        # One timer per connection, not one per request: it looks at the pending head when
        # it fires and sets itself again for the rest of that head's time.
        self._header_timer: TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_since = self.loop.time()
        self._header_timer = self.loop.call_later(self.header_timeout, self._check_head)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._chunk_start = self._received
        self._received += len(data)
        super().data_received(data)
        # Every byte after the head's first chunk is head while the headers are incomplete:
        # headers that never end are refused at most one chunk past the limit. A body's
        # bytes besides its data are counted the same way, so a trailer section that never
        # ends is refused too.
        head_over = self._in_head and self._received - self._head_after > self.max_header_bytes
        framing_over = (
            self._in_body
            and self._received - self._body_from - self._body_data
            > self.max_header_bytes + _CHUNK_FRAMING * self._body_chunks
        )
        if (head_over or framing_over) and not self.transport.is_closing():
            self._refuse(431)

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_first = self._chunk_start
        self._head_after = self._received
        if self.cycle is not None:  # the first request's clock runs from the connection
            self._head_since = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.max_request_line:
            self._refusal = 414
            raise RequestRefused(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:
            super().on_header(name, value)
            return
        # A trailer field: dropped, as RFC 9110 section 6.5.1 allows (the headers the app
        # was given are final once the head is complete), and counted like a header line.
        self._trailer_bytes += len(name) + len(value) + _LINE_OVERHEAD
        if self._trailer_bytes > self.max_header_bytes:
            self._refusal = 431
            raise RequestRefused(431)

    def on_body(self, body: bytes) -> None:
        self._body_data += len(body)
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._body_chunks += 1

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._in_body = True
        self._body_from, self._body_data, self._body_chunks = self._received, 0, 0
        self._trailer_bytes = 0
        if self._received - self._head_first > self.max_header_bytes:
            # The head may be over the limit (it ended in a large chunk): count it exactly.
            size = len(self.url) + sum(
                len(name) + len(value) + _LINE_OVERHEAD for name, value in self.headers
            )
            if size > self.max_header_bytes:
                self._refusal = 431
                raise RequestRefused(431)
        super().on_headers_complete()

    # -- refusals --------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers 400 to any parser error, and an exception raised by a callback
        # is one: the refusal it stands for is answered instead.
        if self._refusal is None:
            self._refuse(400, msg)
        else:
            self._refuse(self._refusal)

    def _refuse(self, status: int, detail: str | None = None) -> None:
        """Answer ``status`` and close: the rest of the request is never read. A request
        whose answer has begun (refused while its body is read) is only cut off."""
        self._refusal = status
        self._stop_header_timer()
        if self.transport.is_closing():
            return
        if self.cycle is not None and self._in_body and self.cycle.response_started:
            self.transport.close()
            return
        phrase = http.HTTPStatus(status).phrase
        head = [f"HTTP/1.1 {status} {phrase}\r\n".encode()]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        if status in _REFUSALS:
            # Never reached the app: a problem of its own, with an id of its own.
            request_id = new_request_id()
            problem = Problem(
                title=phrase, status=status, detail=_REFUSALS[status], request_id=request_id
            )
            body = orjson.dumps(problem.model_dump(exclude_none=True))
            head += (
                f"content-type: {PROBLEM_CONTENT_TYPE}\r\n".encode(),
                f"x-request-id: {request_id}\r\n".encode(),
            )
        else:
            body = (detail or phrase).encode("ascii", "replace")
            head.append(b"content-type: text/plain; charset=utf-8\r\n")
        head += (
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
        self.transport.write(b"".join(head))
        self.transport.close()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _check_head(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        first_request = self.cycle is None
        if not self._in_head and not first_request:
            # Between requests (uvicorn's keep-alive timeout rules there) or reading a
            # body: look again later.
            delay = self.header_timeout
        else:
            delay = self._head_since + self.header_timeout - self.loop.time()
        if delay > 0:
            self._header_timer = self.loop.call_later(delay, self._check_head)
        elif self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head is late while an answer is on its way: close once it is
            # sent, never cut it short.
            self.cycle.keep_alive = False
        elif not self._in_head:
            self.transport.close()  # connected, never sent a byte: nothing to answer
        else:
            self._refuse(408)


def limited_protocol(
    *, max_request_line: int, max_header_bytes: int, header_timeout: float
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``), with these limits."""
    return type(
        "GatewayHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "max_request_line": max_request_line,
            "max_header_bytes": max_header_bytes,
            "header_timeout": header_timeout,
        },
    )
