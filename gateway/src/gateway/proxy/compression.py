"""Gzip for proxied answers, decided by the proxy, which knows the upstream's length first.

Starlette's ``GZipMiddleware`` wraps every request whose client accepts gzip (every browser)
in a responder that intercepts, inspects and re-sends its first message, even when the answer
is far below the threshold, as most API answers are: a cost on every proxied request
(bench/CHANGES.md). The proxy has the upstream's headers, and its Content-Length,
before it sends anything, so it decides once, and only answers worth compressing pay.

RFC 9110: a gzipped answer is another representation, so its ``ETag`` gets a ``-gzip``
suffix and is weak; a revalidation that carries such a tag is forwarded with the upstream's own
tag (``upstream_validators``), and its 304 is given the gzip tag back. Every answer that may be
compressed names ``Accept-Encoding`` in ``Vary``, compressed or not (docs/edge.md).
"""

from __future__ import annotations

import zlib

# zlib's default: on JSON, most of level 9's ratio for a fraction of its CPU.
LEVEL = 6
# Not worth compressing: event streams are sent event by event as they happen (compressing
# would hold them back); images, audio, video, archives and fonts are compressed already.
_SKIPPED_TYPES = (
    b"text/event-stream",
    b"image/",
    b"audio/",
    b"video/",
    b"font/woff",
    b"application/zip",
    b"application/gzip",
    b"application/x-gzip",
    b"application/zstd",
    b"application/octet-stream",
)
_GZIP_SUFFIX = b'-gzip"'

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


def vary_on_encoding(headers: Headers) -> Headers | None:
    """The headers of an answer that may be compressed, with ``Accept-Encoding`` named in
    ``Vary`` (in one field); None for one never compressed: encoded by the upstream
    already, a part of a representation (206), an event stream or a type compressed
    already. One pass, as it runs on every proxied answer."""
    kept: Headers = []
    vary: list[bytes] = []
    for name, value in headers:
        if name == b"vary":
            vary.append(value)
            continue
        if name == b"content-encoding" or name == b"content-range":
            return None
        if name == b"content-type" and value.lstrip().lower().startswith(_SKIPPED_TYPES):
            return None
        kept.append((name, value))
    if not any(b"accept-encoding" in value.lower() or value.strip() == b"*" for value in vary):
        vary.append(b"Accept-Encoding")
    kept.append((b"vary", b", ".join(vary)))
    return kept


def gzip_etag(etag: bytes) -> bytes:
    """The tag of the gzipped representation, weak (RFC 9110 section 8.8.1: not the same
    bytes): ``"abc"`` and ``W/"abc"`` -> ``W/"abc-gzip"``."""
    if not etag.endswith(b'"'):
        return etag
    if not etag.endswith(_GZIP_SUFFIX):
        etag = etag[:-1] + _GZIP_SUFFIX
    return etag if etag.startswith(b"W/") else b"W/" + etag


def upstream_validators(value: bytes) -> bytes | None:
    """An ``If-None-Match`` value with the tags of gzipped answers turned back into the
    upstream's own; None when it names none (the value is forwarded as is)."""
    if _GZIP_SUFFIX not in value:
        return None
    return value.replace(_GZIP_SUFFIX, b'"')


def gzip_validators(headers: Headers, if_none_match: bytes) -> Headers:
    """The headers of a 304 to a revalidation whose ``If-None-Match`` named gzip tags: its
    ``ETag`` is the gzip tag when that is the one the client held (not the upstream's own,
    also listed), so that the 304 names what the client's cache stored (RFC 9111 4.3.4)."""
    held = {tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")}
    return [(name, _matched(value, held) if name == b"etag" else value) for name, value in headers]


def _matched(etag: bytes, held: set[bytes]) -> bytes:
    gzipped = gzip_etag(etag)
    if gzipped.removeprefix(b"W/") in held and etag.removeprefix(b"W/") not in held:
        return gzipped
    return etag


def gzip_headers(headers: Headers, length: int | None) -> Headers:
    """The headers (``vary_on_encoding``'s) of the answer once gzipped: its own ``ETag``, the
    encoding, and its new length (or none when streamed)."""
    kept = [
        (name, gzip_etag(value) if name == b"etag" else value)
        for name, value in headers
        if name != b"content-length"
    ]
    kept.append((b"content-encoding", b"gzip"))
    if length is not None:
        kept.append((b"content-length", str(length).encode()))
    return kept


def gzip_whole(body: bytes) -> bytes:
    return zlib.compress(body, LEVEL, wbits=_GZIP_WBITS)


def gzip_stream() -> zlib._Compress:
    """A compressor for an answer streamed chunk by chunk: ``compress`` each, then ``flush``."""
    return zlib.compressobj(LEVEL, zlib.DEFLATED, _GZIP_WBITS)
