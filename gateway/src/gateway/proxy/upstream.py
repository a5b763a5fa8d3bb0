"""Pure-ASGI forwarding to the upstreams on one pool of keep-alive connections per process.

The pool (``gateway.proxy.http1``) takes the request's headers as the bytes uvicorn parsed
and gives back the answer's as the list ASGI sends: a general client library (aiohttp's,
httpx's) builds far more per request than the proxy needs (bench/CHANGES.md). Answering with
plain ASGI messages (no StreamingResponse) saves its per-request machinery too.
Responses of known, small length are buffered and sent in one message; larger or
unknown-length ones are streamed.

The proxy applies the body limit and gzip to what it forwards itself, rather than leaving
them to the middleware every other request meets (``gateway.proxy.front``): it reads the
request body anyway, and it knows the upstream's length before it answers. Media uploads
are the exception to buffering: their bodies (up to ``media_upload_max_bytes``) stream
through to the upstream as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator

from starlette.types import Message, Receive, Scope, Send

from gateway.config import GatewaySettings
from gateway.proxy.compression import (
    accepts_gzip,
    gzip_headers,
    gzip_stream,
    gzip_validators,
    gzip_whole,
    upstream_validators,
    vary_on_encoding,
)
from gateway.proxy.http1 import (
    Http1Pool,
    Origin,
    PoolStats,
    UpstreamResponse,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.proxy.routes import Route
from gateway.proxy.tracing import TRACE_HEADERS, TracedHttp1Pool
from shared.asgi import (
    RequestBodyTooLarge,
    declared_length,
    declared_length_refusal,
    header_value,
)
from shared.errors import problem_response
from shared.tracing import tracing_enabled

logger = logging.getLogger(__name__)

# RFC 9110 section 7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set again by the client from what it actually sends.
# A client's trace context is never forwarded: the gateway starts the trace (proxy.tracing).
_REQUEST_DROPPED = (
    HOP_BY_HOP | {b"host", b"content-length", b"x-request-id", b"x-forwarded-for"} | TRACE_HEADERS
)
# The gateway's request id middleware sets the id, its server the Date and Server: each once.
_RESPONSE_DROPPED = HOP_BY_HOP | {b"x-request-id", b"date", b"server"}
# The validator that may carry the tag of a gzipped answer (``gateway.proxy.compression``).
# Not If-Match: its comparison is strong (RFC 9110 section 13.1.1), and a gzip tag is weak,
# so it never matches there; it is forwarded as sent.
_IF_NONE_MATCH = b"if-none-match"
# RFC 9110: never a body (nor a Content-Length uvicorn would hold the empty body to).
_BODILESS = frozenset({204, 304})
# Safe to send twice: retried once when a pooled connection turns out to be closed.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_CHUNK = 65_536
# The one route whose bodies are streamed, not buffered (POST only).
STREAMED_UPLOAD = re.compile(r"/api/v1/products/[^/]+/media")


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> tuple[frozenset[bytes], bool]:
    """Header names the client listed in ``Connection`` (hop-by-hop as well), and whether a
    validator names a gzipped answer's tag (one pass over the headers for both)."""
    tokens: set[bytes] = set()
    gzip_validators = False
    for name, value in headers:
        if name == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b","))
        elif name == _IF_NONE_MATCH and upstream_validators(value) is not None:
            gzip_validators = True
    return frozenset(tokens), gzip_validators


async def _read_body(receive: Receive, limit: int) -> bytes:
    # Bodies are capped (1 MiB by default): buffering one is cheaper than a streamed upload
    # and lets an idempotent request be retried. A chunked body is counted as it arrives.
    chunks = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client went away")
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise RequestBodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _stream_body(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, counted against ``limit`` (a chunked body declares
    no length to refuse up front)."""
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client went away")
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise RequestBodyTooLarge(limit)
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class UpstreamClient:
    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.buffer_bytes = settings.upstream_buffer_bytes
        self.max_body_bytes = settings.max_body_bytes
        self.upload_max_bytes = settings.media_upload_max_bytes
        self.gzip_min_bytes = settings.gzip_min_bytes
        self._origins: dict[str, Origin] = {}
        self._pool: Http1Pool | None = None

    async def start(self) -> None:
        # Client spans and context injection only when tracing is on (gateway.proxy.tracing).
        pool_class = TracedHttp1Pool if tracing_enabled() else Http1Pool
        self._pool = pool_class(
            limit=self.settings.upstream_pool_size,
            keepalive_seconds=self.settings.upstream_keepalive_seconds,
            connect_timeout=self.settings.upstream_connect_timeout_seconds,
            read_timeout=self.settings.upstream_read_timeout_seconds,
            total_timeout=self.settings.upstream_total_timeout_seconds,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> Http1Pool:
        if self._pool is None:
            raise RuntimeError("the upstream client is not started (lifespan not run)")
        return self._pool

    def stats(self) -> PoolStats | None:
        """The pool's state and counts; None before it starts or once it is closed."""
        return self._pool.stats() if self._pool is not None else None

    def origin(self, upstream: str) -> Origin:
        origin = self._origins.get(upstream)
        if origin is None:
            origin = self._origins[upstream] = Origin.parse(upstream)
        return origin

    async def get(self, upstream: str, path: str) -> tuple[int, bytes]:
        """A plain GET of the gateway's own (the services' OpenAPI documents): status, body."""
        response = await self.pool.request(
            self.origin(upstream), "GET", path.encode("ascii"), [(b"accept", b"*/*")], b""
        )
        try:
            return response.status, await response.read()
        finally:
            response.release()

    def _request_headers(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], bool]:
        """The headers to forward, and whether a validator named a gzipped answer's tag
        (forwarded as the upstream's own tag)."""
        raw: list[tuple[bytes, bytes]] = scope["headers"]
        tokens, gzip_validators = _connection_tokens(raw)
        dropped = _REQUEST_DROPPED | tokens
        headers = [(name, value) for name, value in raw if name not in dropped]
        if gzip_validators:
            headers = [
                (name, upstream_validators(value) or value)
                if name == _IF_NONE_MATCH
                else (name, value)
                for name, value in headers
            ]
        forwarded_for = [value for name, value in raw if name == b"x-forwarded-for"]
        client = scope.get("client")
        if client:
            forwarded_for.append(client[0].encode("latin-1"))
        if forwarded_for:
            headers.append((b"x-forwarded-for", b", ".join(forwarded_for)))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")))
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            headers.append((b"x-request-id", request_id.encode("latin-1")))
        return headers, gzip_validators

    async def forward(self, scope: Scope, receive: Receive, send: Send, route: Route) -> None:
        """Send the request to the route's upstream and relay its answer."""
        method: str = scope["method"]
        target: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        if query:
            target += b"?" + query  # forwarded exactly as the client encoded it
        if method == "POST" and STREAMED_UPLOAD.fullmatch(scope["path"]):
            await self._forward_upload(scope, receive, send, route, target)
            return
        refusal = declared_length_refusal(scope, self.max_body_bytes)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        try:
            body = await _read_body(receive, self.max_body_bytes)
        except RequestBodyTooLarge as exc:
            await problem_response(413, exc.detail)(scope, receive, send)
            return
        headers, gzip_validators = self._request_headers(scope)
        origin = self.origin(route.upstream)

        attempts = 2 if method in _IDEMPOTENT else 1
        for attempt in range(attempts):
            try:
                response = await self.pool.request(origin, method, target, headers, body)
                break
            except UpstreamUnavailable as exc:
                # A pooled keep-alive connection the upstream had just closed: retry safely.
                if exc.stale and attempt + 1 < attempts:
                    continue
                await self._unavailable(scope, receive, send, exc)
                return
            except UpstreamTimeout as exc:
                await self._timed_out(scope, receive, send, exc)
                return

        gzip = accepts_gzip(header_value(scope, b"accept-encoding"))
        try:
            if response.status in _BODILESS or method == "HEAD":
                await self._relay_bodiless(
                    scope, send, response, revalidated_gzip=gzip and gzip_validators
                )
            else:
                await self._relay(scope, send, response, gzip=gzip)
        finally:
            response.release()

    async def _forward_upload(
        self, scope: Scope, receive: Receive, send: Send, route: Route, target: bytes
    ) -> None:
        """A media upload: the body goes to the upstream as it arrives, never whole in memory.

        Not retried (the body is spent). A client that goes away or sends too much closes the
        upstream connection mid-body, so the upstream drops what it had received.
        """
        refusal = declared_length_refusal(scope, self.upload_max_bytes)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        declared = declared_length(scope)
        headers, _ = self._request_headers(scope)
        body = _stream_body(receive, self.upload_max_bytes)
        try:
            response = await self.pool.request_streamed(
                self.origin(route.upstream),
                "POST",
                target,
                headers,
                body,
                declared,
            )
        except RequestBodyTooLarge as exc:
            await problem_response(413, exc.detail)(scope, receive, send)
            return
        except ConnectionAbortedError:
            logger.info("client went away during an upload to %s", scope["path"])
            return
        except UpstreamUnavailable as exc:
            await self._unavailable(scope, receive, send, exc)
            return
        except UpstreamTimeout as exc:
            await self._timed_out(scope, receive, send, exc)
            return
        try:
            await self._relay(scope, send, response, gzip=False)
        finally:
            response.release()

    @staticmethod
    def _response_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
        return [
            (lowered, value)
            for name, value in response.headers
            if (lowered := name.lower()) not in _RESPONSE_DROPPED
        ]

    async def _relay_bodiless(
        self, scope: Scope, send: Send, response: UpstreamResponse, *, revalidated_gzip: bool
    ) -> None:
        """A 204, a 304 or the answer to a HEAD: headers only, never a content coding.

        A 304 or a HEAD answer carries the ``Vary`` its 200 would: the gateway cannot tell
        from a 304 whether that 200 was of a type it compresses, so every 304 names
        ``Accept-Encoding``. A 304 to a revalidation with a gzip tag carries that tag, as the
        200 it stands for would have (RFC 9110 section 15.4.5); others, the upstream's.
        """
        status = response.status
        headers = self._response_headers(response)
        if status in _BODILESS:
            headers = [(name, value) for name, value in headers if name != b"content-length"]
        if status == 304 or scope["method"] == "HEAD":
            headers = vary_on_encoding(headers) or headers
        if revalidated_gzip and status == 304:
            headers = gzip_validators(headers, header_value(scope, _IF_NONE_MATCH) or b"")
        with contextlib.suppress(UpstreamTimeout, UpstreamUnavailable):
            # Nothing to read, but the connection is reusable only once read; if that fails
            # it is closed on release, and the answer is whole regardless.
            await response.read()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _relay(
        self, scope: Scope, send: Send, response: UpstreamResponse, *, gzip: bool
    ) -> None:
        headers = self._response_headers(response)
        length = response.content_length
        # An answer that may be compressed says so (Vary), whether this one is or not.
        varied = vary_on_encoding(headers) if response.status != 206 else None
        if varied is not None:
            headers = varied
        gzip = gzip and varied is not None and (length is None or length >= self.gzip_min_bytes)
        if length is not None and length <= self.buffer_bytes:
            try:
                body = await response.read()
            except UpstreamTimeout as exc:
                await self._timed_out(scope, _no_receive, send, exc)
                return
            except UpstreamUnavailable as exc:
                await self._unavailable(scope, _no_receive, send, exc)
                return
            if gzip:
                body = gzip_whole(body)
                headers = gzip_headers(headers, len(body))
            start: Message = {"type": "http.response.start", "status": response.status}
            start["headers"] = headers
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return

        if gzip:
            headers = gzip_headers(headers, None)
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        # Once the status is sent, an upstream failure can only cut the connection short.
        compressor = gzip_stream() if gzip else None
        async for chunk in response.iter_chunks():
            data = compressor.compress(chunk) if compressor else chunk
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        await send(
            {"type": "http.response.body", "body": compressor.flush() if compressor else b""}
        )

    async def _unavailable(
        self, scope: Scope, receive: Receive, send: Send, exc: Exception
    ) -> None:
        logger.warning("upstream unavailable for %s: %r", scope["path"], exc)
        response = problem_response(
            503,
            "The service behind this path is unavailable; retry later.",
            headers={"Retry-After": "1"},
        )
        await response(scope, receive, send)

    async def _timed_out(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        logger.warning("upstream timed out for %s: %r", scope["path"], exc)
        await problem_response(504, "The service behind this path did not answer in time.")(
            scope, receive, send
        )


async def _no_receive() -> Message:
    await asyncio.sleep(0)
    return {"type": "http.disconnect"}
