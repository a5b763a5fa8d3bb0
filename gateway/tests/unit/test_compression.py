"""Which clients get gzip, and the headers of a gzipped answer."""

from __future__ import annotations

import gzip

import pytest

from gateway.proxy.compression import (
    accepts_gzip,
    gzip_etag,
    gzip_headers,
    gzip_stream,
    gzip_validators,
    gzip_whole,
    upstream_validators,
    vary_on_encoding,
)


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
    varied = vary_on_encoding(headers)
    assert varied is not None
    assert gzip_headers(varied, 321) == [
        (b"content-type", b"application/json"),
        (b"vary", b"Origin, Accept-Encoding"),
        (b"content-encoding", b"gzip"),
        (b"content-length", b"321"),
    ]
    streamed = gzip_headers([(b"vary", b"accept-encoding")], None)
    assert streamed == [(b"vary", b"accept-encoding"), (b"content-encoding", b"gzip")]


@pytest.mark.parametrize(
    ("vary", "varied"),
    [
        ([], b"Accept-Encoding"),
        ([b"Authorization"], b"Authorization, Accept-Encoding"),
        ([b"Authorization", b"Origin"], b"Authorization, Origin, Accept-Encoding"),
        ([b"accept-encoding"], b"accept-encoding"),  # never twice
        ([b"*"], b"*"),
    ],
)
def test_an_answer_that_may_be_gzipped_names_accept_encoding_in_one_vary(
    vary: list[bytes], varied: bytes
) -> None:
    headers = [(b"content-type", b"application/json"), *((b"vary", value) for value in vary)]
    assert vary_on_encoding(headers) == [(b"content-type", b"application/json"), (b"vary", varied)]


def test_whole_and_streamed_compression_decode_to_the_original() -> None:
    original = b'{"sku": "SKU-1", "name": "Widget"}' * 500
    assert gzip.decompress(gzip_whole(original)) == original
    compressor = gzip_stream()
    parts = [compressor.compress(original[i : i + 1000]) for i in range(0, len(original), 1000)]
    assert gzip.decompress(b"".join(parts) + compressor.flush()) == original


@pytest.mark.parametrize(
    ("etag", "gzipped"),
    [
        (b'"abc"', b'W/"abc-gzip"'),
        (b'W/"abc"', b'W/"abc-gzip"'),
        (b'W/"abc-gzip"', b'W/"abc-gzip"'),  # never twice
        (b'"abc-gzip"', b'W/"abc-gzip"'),
    ],
)
def test_a_gzipped_answer_has_a_weak_tag_of_its_own(etag: bytes, gzipped: bytes) -> None:
    assert gzip_etag(etag) == gzipped
    assert gzip_headers([(b"etag", etag)], 10)[0] == (b"etag", gzipped)


@pytest.mark.parametrize(
    ("if_none_match", "forwarded"),
    [
        (b'"abc-gzip"', b'"abc"'),
        (b'W/"abc-gzip", "def"', b'W/"abc", "def"'),
        (b'"abc"', None),  # nothing to map: forwarded as it is
        (b"*", None),
    ],
)
def test_a_revalidation_is_forwarded_with_the_upstreams_own_tags(
    if_none_match: bytes, forwarded: bytes | None
) -> None:
    assert upstream_validators(if_none_match) == forwarded


def test_a_304_for_a_gzipped_answer_carries_its_weak_tag() -> None:
    headers = [(b"etag", b'"abc"'), (b"vary", b"Accept-Encoding"), (b"cache-control", b"x")]
    assert gzip_validators(headers, b'W/"abc-gzip"') == [
        (b"etag", b'W/"abc-gzip"'),
        (b"vary", b"Accept-Encoding"),
        (b"cache-control", b"x"),
    ]


@pytest.mark.parametrize(
    ("if_none_match", "etag"),
    [
        (b'W/"old-gzip", "abc"', b'"abc"'),  # the plain tag matched: the 304 names it
        (b'W/"old-gzip", W/"abc-gzip"', b'W/"abc-gzip"'),  # the gzip tag matched
        (b'W/"abc-gzip", "abc"', b'"abc"'),  # both held: the upstream's own
        (b'W/"old-gzip"', b'"abc"'),  # none of them (a 304 for "*" upstream, say)
    ],
)
def test_a_304_names_the_tag_the_client_held(if_none_match: bytes, etag: bytes) -> None:
    assert gzip_validators([(b"etag", b'"abc"')], if_none_match) == [(b"etag", etag)]


@pytest.mark.parametrize(
    ("headers", "worth"),
    [
        ([(b"content-type", b"application/json")], True),
        ([(b"content-type", b"text/html; charset=utf-8")], True),
        ([(b"content-type", b"image/png")], False),
        ([(b"content-type", b"image/webp")], False),
        ([(b"content-type", b"video/mp4")], False),
        ([(b"content-type", b"application/zip")], False),
        ([(b"content-type", b"text/event-stream")], False),
        ([(b"content-encoding", b"br")], False),
        ([(b"content-range", b"bytes 0-99/1000")], False),  # a part: never re-encoded
    ],
)
def test_only_answers_worth_it_are_compressed(
    headers: list[tuple[bytes, bytes]], worth: bool
) -> None:
    assert (vary_on_encoding(headers) is not None) is worth
