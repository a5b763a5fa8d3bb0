"""The proxy's upstream client: pooled keep-alive HTTP/1.1 connections, answers parsed by
httptools (llhttp, the parser uvicorn itself runs on).

Why not a client library: aiohttp's exchange builds a request object, header multidicts,
URL handling, timers and a stream reader per request, a large share of the gateway's CPU per
proxied request (bench/CHANGES.md); the request arrives as bytes and leaves as bytes.

Contract (docs/edge.md, "The upstream client"): one exchange at a time per connection,
never pipelined; Content-Length, chunked or end-of-connection framing, both at once refused;
1xx skipped; 204, 304 and HEAD answers end at their heads; ``Connection: close`` honoured;
heads over ``MAX_HEAD_BYTES`` refused; an upstream closing short of its framing raises
``UpstreamUnavailable`` (``stale`` when a reused connection broke before any byte), a slow
one ``UpstreamTimeout``; pool bounds in ``Http1Pool``. Tested as a client library is:
``gateway/tests/integration/test_http1_conformance.py``.
"""

from gateway.proxy.http1.connection import MAX_HEAD_BYTES
from gateway.proxy.http1.errors import (
    Origin,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.proxy.http1.pool import Http1Pool, PoolStats, UpstreamResponse

__all__ = [
    "MAX_HEAD_BYTES",
    "Http1Pool",
    "Origin",
    "PoolStats",
    "UpstreamError",
    "UpstreamResponse",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]
