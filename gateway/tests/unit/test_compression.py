"""Which clients get gzip, and the headers of a gzipped answer."""

from __future__ import annotations

import gzip

import pytest

from gateway.proxy.compression import accepts_gzip, gzip_headers, gzip_stream, gzip_whole


@pytest.mark.parametrize(
    ("accept_encoding", "accepted"),
    [
        (None, False),
        (b"", False),
        (b"gzip", True),
        (b"GZip", True),
        (b"br, deflate, gzip;q=0.5", True),
        (b"gzip; q=1.0", True),
        (b"gzip;q=0", False),
        (b"gzip; q=0.000", False),
        (b"gzip;q=nonsense", False),
        (b"identity, br", False),
        (b"x-gzip-like", False),
    ],
)
def test_gzip_is_used_only_when_the_client_admits_it(
    accept_encoding: bytes | None, accepted: bool
) -> None:
    assert accepts_gzip(accept_encoding) is accepted


def test_a_gzipped_answer_declares_its_encoding_new_length_and_vary() -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"5000"),
        (b"vary", b"Origin"),
    ]
    assert gzip_headers(headers, 321) == [
        (b"content-type", b"application/json"),
        (b"vary", b"Origin, Accept-Encoding"),
        (b"content-encoding", b"gzip"),
        (b"content-length", b"321"),
    ]
    streamed = gzip_headers([(b"vary", b"accept-encoding")], None)
    assert streamed == [(b"vary", b"accept-encoding"), (b"content-encoding", b"gzip")]


def test_whole_and_streamed_compression_decode_to_the_original() -> None:
    original = b'{"sku": "SKU-1", "name": "Widget"}' * 500
    assert gzip.decompress(gzip_whole(original)) == original
    compressor = gzip_stream()
    parts = [compressor.compress(original[i : i + 1000]) for i in range(0, len(original), 1000)]
    assert gzip.decompress(b"".join(parts) + compressor.flush()) == original
