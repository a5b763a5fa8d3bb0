"""Product images through the running gateway and inventory: upload, serve, delete.

The gateway streams both ways and never compresses an image or a byte range, so the strong
ETag (the sha256) and the ranges stay true for what the client receives.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import ProductFactory
from tests.harness.platform import Platform
from tests.harness.storefront import Shopper, Storefront

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MiB = 1_048_576
BROWSER = {"accept-encoding": "gzip, deflate, br"}


def _jpeg(size: int) -> bytes:
    # Compressible on purpose: a gateway that gzipped images would find it worth doing.
    return (b"\xff\xd8\xff\xe0" + b"\x00" * size)[:size]


async def test_an_image_uploaded_through_the_gateway_is_served_whole_and_in_ranges(
    shop: Storefront, admin: Shopper, product: ProductFactory, platform: Platform
) -> None:
    sku = await product(stock=1)
    image = _jpeg(2 * MiB + 123)  # over the default 1 MiB body limit: the media route's own
    uploaded = await shop.client.post(
        f"/api/v1/products/{sku}/media",
        content=image,
        headers={**admin.headers, "Content-Type": "image/jpeg"},
    )
    assert uploaded.status_code == 201, uploaded.text
    media = uploaded.json()
    sha256 = hashlib.sha256(image).hexdigest()
    assert media["sha256"] == sha256
    stored = Path(platform.env["INVENTORY_MEDIA_ROOT"]) / "content" / sha256[:2] / sha256[2:4]
    assert (stored / sha256).stat().st_size == len(image)

    whole = await shop.client.get(media["url"], headers=BROWSER)
    assert whole.status_code == 200
    assert "content-encoding" not in whole.headers
    assert whole.content == image
    assert whole.headers["etag"] == f'"{sha256}"'
    assert whole.headers["cache-control"] == "public, max-age=31536000, immutable"

    part = await shop.client.get(media["url"], headers={**BROWSER, "Range": "bytes=1000-"})
    assert part.status_code == 206
    assert "content-encoding" not in part.headers
    assert part.headers["content-range"] == f"bytes 1000-{len(image) - 1}/{len(image)}"
    assert part.content == image[1000:]

    unsatisfiable = await shop.client.get(media["url"], headers={"Range": f"bytes={len(image)}-"})
    assert unsatisfiable.status_code == 416

    revalidated = await shop.client.get(
        media["url"], headers={**BROWSER, "If-None-Match": f'"{sha256}"'}
    )
    assert revalidated.status_code == 304
    assert revalidated.content == b""

    shown = (await shop.client.get(f"/api/v1/products/{sku}")).json()
    assert shown["images"] == [
        {"id": media["id"], "url": media["url"], "content_type": "image/jpeg"}
    ]

    deleted = await shop.client.delete(
        f"/api/v1/products/{sku}/media/{media['id']}", headers=admin.headers
    )
    assert deleted.status_code == 204
    assert (await shop.client.get(media["url"])).status_code == 404
    assert (await shop.client.get(f"/api/v1/products/{sku}")).json()["images"] == []


async def test_an_upload_over_10_mib_is_413_at_the_gateway_and_stores_nothing(
    shop: Storefront, admin: Shopper, product: ProductFactory, platform: Platform
) -> None:
    sku = await product(stock=1)
    too_big = _jpeg(10 * MiB + 1)
    refused = await shop.client.post(
        f"/api/v1/products/{sku}/media",
        content=too_big,
        headers={**admin.headers, "Content-Type": "image/jpeg"},
    )
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    tmp = Path(platform.env["INVENTORY_MEDIA_ROOT"]) / "tmp"
    assert not tmp.exists() or os.listdir(tmp) == []
    assert (await shop.client.get(f"/api/v1/products/{sku}")).json()["images"] == []


async def test_bytes_that_are_not_the_declared_image_are_415_through_the_gateway(
    shop: Storefront, admin: Shopper, product: ProductFactory
) -> None:
    sku = await product(stock=1)
    refused = await shop.client.post(
        f"/api/v1/products/{sku}/media",
        content=b"<svg onload=alert(1)>" + b" " * 100,
        headers={**admin.headers, "Content-Type": "image/png"},
    )
    assert refused.status_code == 415
    assert refused.headers["content-type"] == "application/problem+json"
