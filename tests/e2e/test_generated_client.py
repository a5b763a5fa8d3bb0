"""A frontend's client, generated from ``docs/openapi.json`` by openapi-python-client, works
against the running platform: the committed document is a contract one can build on.

The client is generated at test time into a temporary folder (no generated code in the
repository), imported, and used for a whole purchase with its typed models only.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import ProductFactory
from tests.contract.merged import DOCUMENT_PATH
from tests.harness.platform import Platform
from tests.harness.retrying import RetryingTransport
from tests.harness.storefront import ADDRESS, IN_FLIGHT, PASSWORD, VISA, new_email

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PACKAGE = "commerce_client"
CONFIG = DOCUMENT_PATH.with_name("openapi-python-client.yaml")
GENERATE_SECONDS = 60
SETTLE_SECONDS = 60.0


def _retrying() -> dict[str, Any]:
    """What a storefront does on a 503: send a safe request again (tests/harness/retrying.py)."""
    return {"transport": RetryingTransport(httpx.AsyncHTTPTransport())}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``generated("api.orders.place_order_api_v1_orders_post")``: a module of the client
    openapi-python-client generates from docs/openapi.json, as its documentation says."""
    out = tmp_path_factory.mktemp("client")
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(DOCUMENT_PATH),
            "--config",
            str(CONFIG),
            "--meta",
            "none",
            "--output-path",
            str(out / PACKAGE),
        ],
        # Its post hooks format the code with ruff, installed next to it.
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=GENERATE_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A warning means an operation or a response was left out of the client.
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stdout
    sys.path.insert(0, str(out))
    try:
        yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        sys.path.remove(str(out))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


async def test_the_committed_document_is_what_the_running_gateway_serves(
    gateway_client: httpx.AsyncClient,
) -> None:
    served = await gateway_client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == orjson.loads(DOCUMENT_PATH.read_bytes())


async def test_a_generated_typed_client_registers_logs_in_finds_a_product_and_buys_it(
    generated: Any, platform: Platform, product: ProductFactory
) -> None:
    client_module = generated("client")
    models = generated("models")
    register = generated("api.auth.register_api_v1_auth_register_post")
    token = generated("api.auth.token_api_v1_auth_token_post")
    list_products = generated("api.catalog.list_products_api_v1_products_get")
    place_order = generated("api.orders.place_order_api_v1_orders_post")
    get_order = generated("api.orders.get_order_api_v1_orders_order_id_get")
    sku = await product(stock=5)

    anonymous = client_module.Client(base_url=platform.gateway, httpx_args=_retrying())
    async with anonymous:
        email = new_email()
        unavailable = False
        for _ in range(5):
            registered = await register.asyncio_detailed(
                client=anonymous, body=models.RegisterRequest(email=email, password=PASSWORD)
            )
            if registered.status_code != 503:
                break
            unavailable = True  # a storefront sends a registration answered 503 again
            await asyncio.sleep(0.5)
        if not (unavailable and registered.status_code == 409):  # else the first one went
            assert isinstance(registered.parsed, models.UserOut), registered.content
            assert (registered.parsed.email, registered.parsed.roles) == (email, ["customer"])
        login = await token.asyncio_detailed(
            client=anonymous,
            body=models.BodyTokenApiV1AuthTokenPost(username=email, password=PASSWORD),
        )
        assert isinstance(login.parsed, models.TokenResponse), login.content

    shopper = client_module.AuthenticatedClient(
        base_url=platform.gateway, token=login.parsed.access_token, httpx_args=_retrying()
    )
    async with shopper:
        page = await list_products.asyncio(client=shopper, q=sku)
        assert isinstance(page, models.ProductPage)
        [found] = page.items
        assert (found.sku, found.available) == (sku, 5)

        order = models.PlaceOrder(
            items=[models.LineIn(sku=found.sku, quantity=2)],
            payment=models.PaymentIn(token=VISA),
            shipping_address=models.ShippingAddress.from_dict(ADDRESS),
        )
        key = uuid.uuid4().hex
        placed = await place_order.asyncio_detailed(client=shopper, body=order, idempotency_key=key)
        assert placed.status_code == 202, placed.content
        assert isinstance(placed.parsed, models.OrderDetail)
        assert placed.parsed.status == models.OrderStatus.PENDING
        assert placed.parsed.total.amount == 2 * found.price.amount
        # The same key again is the same order, not a second one.
        again = await place_order.asyncio(client=shopper, body=order, idempotency_key=key)
        assert isinstance(again, models.OrderDetail)
        assert again.id == placed.parsed.id

        async with asyncio.timeout(SETTLE_SECONDS):
            while True:
                read = await get_order.asyncio(placed.parsed.id, client=shopper)
                assert isinstance(read, models.OrderDetail)
                if read.status.value not in IN_FLIGHT:
                    break
                await asyncio.sleep(0.2)
        assert read.status == models.OrderStatus.CONFIRMED
        assert [change.status for change in read.status_history] == [
            models.OrderStatus.PENDING,
            models.OrderStatus.AWAITING_PAYMENT,
            models.OrderStatus.CONFIRMED,
        ]
        assert [(line.sku, line.quantity) for line in read.items] == [(sku, 2)]
