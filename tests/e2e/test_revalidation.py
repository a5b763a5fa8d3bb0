"""A browser's revalidations of a product through the running gateway and inventory.

Browsers send ``Accept-Encoding: gzip`` and ``If-None-Match`` on every revalidation. On one
keep-alive connection, parsed strictly (``tests.harness.wire``), the product is fetched
gzipped, then revalidated several times: each is a bodiless 304 without a content coding,
with the tag of the gzipped answer, and the connection stays open throughout.
"""

from __future__ import annotations

import asyncio
import gzip
from urllib.parse import urlsplit

import orjson
import pytest

from tests.conftest import ProductFactory
from tests.harness.platform import Platform
from tests.harness.storefront import Shopper, Storefront
from tests.harness.wire import Answer, WireConnection

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BROWSER = {"accept": "application/json", "accept-encoding": "gzip, deflate, br, zstd"}
REVALIDATIONS = 5


def _browse(platform: Platform, sku: str) -> tuple[list[Answer], bool]:
    address = urlsplit(platform.gateway)
    assert address.hostname is not None
    assert address.port is not None
    target = f"/api/v1/products/{sku}"
    with WireConnection(address.hostname, address.port) as wire:
        answers = [wire.request("GET", target, BROWSER)]
        etag = answers[0].one("etag")
        assert etag is not None
        for _ in range(REVALIDATIONS):
            answers.append(wire.request("GET", target, {**BROWSER, "if-none-match": etag}))
            assert wire.kept_alive, f"connection dropped after {len(answers)} answers"
        identity_tag = etag.removeprefix("W/").removesuffix('-gzip"') + '"'
        answers.append(wire.request("GET", target, {"if-none-match": identity_tag}))
        return answers, wire.kept_alive


async def test_revalidations_of_a_gzipped_product_are_304s_on_one_kept_alive_connection(
    platform: Platform, shop: Storefront, admin: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=3)
    # A description long enough for the product to be gzipped (over GATEWAY_GZIP_MIN_BYTES).
    patched = await shop.client.patch(
        f"/api/v1/products/{sku}", headers=admin.headers, json={"description": "lorem " * 400}
    )
    assert patched.status_code == 200, patched.text
    mark = platform.processes["gateway"].log_size()

    answers, kept_alive = await asyncio.to_thread(_browse, platform, sku)

    first, *revalidations, identity = answers
    assert first.status == 200
    assert first.one("content-encoding") == "gzip"
    assert orjson.loads(gzip.decompress(first.body))["sku"] == sku
    etag = first.one("etag")
    assert etag is not None
    assert etag.startswith('W/"')  # weak: not the identity answer's bytes
    assert etag.endswith('-gzip"')  # distinct from the identity answer's
    for answer in revalidations:
        assert answer.status == 304
        assert answer.body == b""
        assert answer.one("content-encoding") is None
        assert answer.one("etag") == etag
        assert len(answer.all("date")) == 1
        assert len(answer.all("server")) == 1
    # A client without gzip revalidates the identity answer's tag, as the service issued it.
    assert identity.status == 304
    assert identity.one("etag") == etag.removeprefix("W/").removesuffix('-gzip"') + '"'
    assert kept_alive
    log = platform.processes["gateway"].log.read_bytes()[mark:].decode(errors="replace")
    assert "Exception in ASGI application" not in log
    assert "Response content longer than Content-Length" not in log
