"""Gzip for proxied answers, decided by the proxy, which knows the upstream's length first.

Starlette's ``GZipMiddleware`` wraps every request whose client accepts gzip (every browser)
in a responder that intercepts, inspects and re-sends its first message, even when the answer
is far below the threshold, as most API answers are: about 6% of the gateway's CPU per
proxied request in a profile. The proxy has the upstream's headers, and its Content-Length,
before it sends anything, so it decides once, and only answers worth compressing pay.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

# zlib's default: on JSON, most of level 9's ratio for a fraction of its CPU.
LEVEL = 6
# Sent event by event as they happen: compressing would hold them back.
_STREAMED_EVENT_TYPES = (b"text/event-stream",)
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream

Headers = list[tuple[bytes, bytes]]


def accepts_gzip(accept_encoding: bytes | None) -> bool:
    """Whether an ``Accept-Encoding`` value admits gzip (listed, and not with ``q=0``)."""
    if not accept_encoding:
        return False
    for item in accept_encoding.split(b","):
        coding, _, parameters = item.partition(b";")
        if coding.strip().lower() != b"gzip":
            continue
        name, _, weight = parameters.strip().partition(b"=")
        if name.strip().lower() != b"q":
            return True
        try:
            return float(weight) > 0
        except ValueError:
            return False
    return False


def worth_compressing(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """False for answers the upstream encoded already and for event streams."""
    for name, value in headers:
        if name == b"content-encoding":
            return False
        if name == b"content-type" and value.lstrip().lower().startswith(_STREAMED_EVENT_TYPES):
            return False
    return True


def gzip_headers(headers: Headers, length: int | None) -> Headers:
    """The answer's headers once gzipped: its new length (or none when streamed), the
    encoding, and ``Vary: Accept-Encoding`` so that caches keep the two forms apart."""
    kept: Headers = []
    vary: list[bytes] = []
    for name, value in headers:
        if name == b"vary":
            vary.append(value)
        elif name != b"content-length":
            kept.append((name, value))
    if not any(b"accept-encoding" in value.lower() for value in vary):
        vary.append(b"Accept-Encoding")
    kept.append((b"vary", b", ".join(vary)))
    kept.append((b"content-encoding", b"gzip"))
    if length is not None:
        kept.append((b"content-length", str(length).encode()))
    return kept


def gzip_whole(body: bytes) -> bytes:
    return zlib.compress(body, LEVEL, wbits=_GZIP_WBITS)


def gzip_stream() -> zlib._Compress:
    """A compressor for an answer streamed chunk by chunk: ``compress`` each, then ``flush``."""
    return zlib.compressobj(LEVEL, zlib.DEFLATED, _GZIP_WBITS)
