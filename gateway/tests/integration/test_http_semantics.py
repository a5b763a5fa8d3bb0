"""RFC 9110 on the wire: bodiless answers, gzip and validators, headers the gateway adds.

Through the gateway as it runs (uvicorn, real sockets), on one keep-alive connection parsed
strictly (``tests.harness.wire``): a byte too many after a 304, or a header sent twice,
fails the test where a lenient client would not notice.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from gateway.config import GatewaySettings
from tests.harness.wire import Answer, WireConnection

pytestmark = pytest.mark.slow

Served = Callable[..., AbstractAsyncContextManager[GatewaySettings]]
BROWSER = {"accept-encoding": "gzip, deflate, br", "accept": "application/json"}


def _wire(settings: GatewaySettings) -> WireConnection:
    return WireConnection("127.0.0.1", settings.port)


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    # The socket client blocks; the gateway serves on this test's event loop.
    return await asyncio.to_thread(function, *args)


def _revalidations(settings: GatewaySettings, rounds: int) -> list[Answer]:
    with _wire(settings) as wire:
        first = wire.request("GET", "/api/v1/products/tagged", BROWSER)
        answers = [first]
        etag = first.one("etag")
        assert etag is not None
        for _ in range(rounds):
            answers.append(
                wire.request("GET", "/api/v1/products/tagged", {**BROWSER, "if-none-match": etag})
            )
            assert wire.kept_alive, "the gateway dropped the keep-alive connection"
        return answers


async def test_browser_revalidations_of_a_gzipped_answer_are_bodiless_304s_on_one_connection(
    served_gateway: Served,
) -> None:
    async with served_gateway() as settings:
        first, *revalidated = await _in_thread(_revalidations, settings, 5)
    assert first.status == 200
    assert first.one("content-encoding") == "gzip"
    assert b"a" * 100 in gzip.decompress(first.body)
    # The gzipped representation has a tag of its own, weak (not the identity's bytes).
    assert first.one("etag") == 'W/"v1-tagged-gzip"'
    assert "accept-encoding" in (first.one("vary") or "").lower()
    for answer in revalidated:
        assert answer.status == 304
        assert answer.body == b""
        assert answer.one("content-encoding") is None
        assert answer.one("content-length") is None
        # What its 200 carries: the tag the client holds, Cache-Control, Vary.
        for name in ("etag", "cache-control", "vary"):
            assert answer.one(name) == first.one(name), name


async def test_a_304_to_the_identity_tag_or_a_star_carries_the_vary_of_its_200(
    served_gateway: Served,
) -> None:
    def exchange(settings: GatewaySettings) -> list[Answer]:
        with _wire(settings) as wire:
            return [
                wire.request("GET", "/api/v1/products/tagged", {**BROWSER, "if-none-match": tag})
                for tag in ('"v1-tagged"', "*", 'W/"v1-tagged"')
            ]

    async with served_gateway() as settings:
        answers = await _in_thread(exchange, settings)
    for answer in answers:
        assert answer.status == 304
        # The tag the client's validator matched: the upstream's own.
        assert answer.one("etag") == '"v1-tagged"'
        assert answer.one("cache-control") == "public, max-age=60"
        assert answer.one("vary") == "Accept-Encoding"


async def test_every_answer_that_may_be_gzipped_varies_on_accept_encoding(
    served_gateway: Served,
) -> None:
    def exchange(settings: GatewaySettings) -> list[Answer]:
        with _wire(settings) as wire:
            return [
                wire.request("GET", "/api/v1/products/SKU-1", {"accept-encoding": coding})
                for coding in ("gzip;q=0", "*", "identity", "gzip")
            ] + [wire.request("GET", "/api/v1/products/SKU-1")]

    async with served_gateway(gzip_min_bytes=1_000_000) as settings:
        answers = await _in_thread(exchange, settings)
    for answer in answers:
        assert answer.status == 200
        assert answer.one("content-encoding") is None  # under the threshold
        assert "accept-encoding" in (answer.one("vary") or "").lower()


async def test_a_head_is_answered_by_the_upstream_with_the_headers_of_its_get(
    served_gateway: Served,
) -> None:
    def exchange(settings: GatewaySettings) -> tuple[Answer, Answer, bool]:
        with _wire(settings) as wire:
            got = wire.request("GET", "/api/v1/products/tagged")
            head = wire.request("HEAD", "/api/v1/products/tagged", BROWSER)
            return got, head, wire.kept_alive

    async with served_gateway() as settings:
        got, head, kept_alive = await _in_thread(exchange, settings)
    assert (head.status, head.body, head.one("content-encoding")) == (200, b"", None)
    # The identity representation's: its tag and length, and the Vary of every answer.
    for name in ("etag", "cache-control", "content-type", "content-length", "vary"):
        assert head.one(name) == got.one(name), name
    assert head.one("vary") == "Accept-Encoding"
    assert kept_alive


async def test_if_match_is_forwarded_as_sent_since_a_weak_gzip_tag_never_matches_there(
    served_gateway: Served,
) -> None:
    def exchange(settings: GatewaySettings) -> Answer:
        with _wire(settings) as wire:
            headers = {"if-match": 'W/"v1-tagged-gzip"', "content-type": "application/json"}
            return wire.request("PATCH", "/api/v1/products/SKU-1", headers, chunked_body=b"{}")

    async with served_gateway() as settings:
        answer = await _in_thread(exchange, settings)
    forwarded = dict(json.loads(answer.body)["headers"])
    assert forwarded["if-match"] == 'W/"v1-tagged-gzip"'


async def test_date_and_server_appear_once_on_proxied_answers(served_gateway: Served) -> None:
    def exchange(settings: GatewaySettings) -> list[Answer]:
        with _wire(settings) as wire:
            return [
                wire.request("GET", "/api/v1/products/SKU-1"),
                wire.request("GET", "/api/v1/products/tagged", BROWSER),
                wire.request("GET", "/api/v1/products/nothing"),
            ]

    async with served_gateway() as settings:
        answers = await _in_thread(exchange, settings)
    for answer in answers:
        assert len(answer.all("date")) == 1, answer.headers
        assert len(answer.all("server")) == 1, answer.headers


async def test_a_204_and_a_head_answer_carry_no_body_and_no_content_coding(
    served_gateway: Served,
) -> None:
    def exchange(settings: GatewaySettings) -> tuple[Answer, Answer, bool]:
        with _wire(settings) as wire:
            nothing = wire.request("GET", "/api/v1/products/nothing", BROWSER)
            head = wire.request("HEAD", "/api/v1/products/tagged", BROWSER)
            return nothing, head, wire.kept_alive

    async with served_gateway() as settings:
        nothing, head, kept_alive = await _in_thread(exchange, settings)
    assert (nothing.status, nothing.body, nothing.one("content-encoding")) == (204, b"", None)
    assert (head.status, head.body, head.one("content-encoding")) == (200, b"", None)
    assert kept_alive


async def test_images_are_never_gzipped(served_gateway: Served) -> None:
    def exchange(settings: GatewaySettings) -> Answer:
        with _wire(settings) as wire:
            return wire.request("GET", "/api/v1/products/image", BROWSER)

    async with served_gateway() as settings:
        image = await _in_thread(exchange, settings)
    assert image.status == 200
    assert image.one("content-encoding") is None
    assert image.body == bytes(4096)


async def test_trailer_fields_never_join_the_headers_forwarded_upstream(
    served_gateway: Served,
) -> None:
    # The gateway authenticates and limits on the head's fields; fields sent after the body
    # (a chunked request's trailers) must not reach the service as if they were headers.
    def exchange(settings: GatewaySettings) -> tuple[Answer, bool]:
        with _wire(settings) as wire:
            answer = wire.request(
                "POST",
                "/api/v1/products/echo",
                {"content-type": "application/json"},
                chunked_body=b"{}",
                trailers={"x-trailer": "1", "authorization": "Bearer forged"},
            )
            return answer, wire.kept_alive

    async with served_gateway() as settings:
        answer, kept_alive = await _in_thread(exchange, settings)
    assert answer.status == 200, answer.body
    forwarded = {name for name, _ in json.loads(answer.body)["headers"]}
    assert "x-trailer" not in forwarded
    assert "authorization" not in forwarded
    assert kept_alive
