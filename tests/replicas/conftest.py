"""Fixtures of the replica tests: the ``platform`` here is two of everything behind HAProxy.

Overriding ``platform`` gives every fixture of ``tests/conftest.py`` (the storefront client,
the admin, products, the database) the replicas: the client talks to the load balancer.
The tests marked ``replicas`` run only when selected (``make replicas-test``: ``-m
replicas``); ``make test`` skips them, as they take minutes more (CI runs them in a step of
their own), and runs the quick ones here (the supervisor, the generated configuration).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import ProductFactory, platform_fixture
from tests.harness.load import OrderStream
from tests.harness.storefront import Storefront
from tests.replicas.harness import ReplicaPlatform, haproxy_available

HERE = os.path.dirname(__file__)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = "replicas" in (config.option.markexpr or "")
    reason = None
    if not selected:
        reason = "replica tests run with -m replicas (make replicas-test)"
    elif not haproxy_available():
        reason = "HAProxy is not installed (apt-get install haproxy): no load balancer"
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("replicas") and str(item.path).startswith(HERE):
            item.add_marker(pytest.mark.skip(reason=reason))


# Two of every process and HAProxy, on a database and namespace of their own.
platform = platform_fixture(ReplicaPlatform, "replicas")


SHOPPERS = 8
PRODUCTS = 4
STOCK = 120


@pytest.fixture
async def stream(shop: Storefront, product: ProductFactory) -> OrderStream:
    """Shoppers and products of their own, for a stream of orders through the balancer."""
    shoppers = [await shop.new_customer() for _ in range(SHOPPERS)]
    skus = [await product(stock=STOCK) for _ in range(PRODUCTS)]
    return OrderStream(shop=shop, shoppers=shoppers, skus=skus)
