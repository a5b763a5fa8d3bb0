"""Fixtures of the fault tests: a stream of orders on fresh products, and the books."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import ProductFactory
from tests.harness import database as platform_database
from tests.harness.accounting import Books, settled_books
from tests.harness.load import OrderStream
from tests.harness.platform import Platform
from tests.harness.storefront import Storefront

SHOPPERS = 4
PRODUCTS = 3
STOCK = 40


@pytest.fixture
async def stream(shop: Storefront, product: ProductFactory) -> OrderStream:
    shoppers = [await shop.new_customer() for _ in range(SHOPPERS)]
    skus = [await product(stock=STOCK) for _ in range(PRODUCTS)]
    return OrderStream(shop=shop, shoppers=shoppers, skus=skus)


async def books_of(platform: Platform) -> Books:
    """The platform's books once it is quiet (see tests.harness.accounting)."""
    return await settled_books(
        lambda: platform_database.connect(platform.database), platform.namespace
    )


def assert_books_balance(books: Books) -> None:
    assert not books.problems(), "the books do not balance:\n  " + "\n  ".join(books.problems())


async def assert_each_order_placed_once(db: asyncpg.Connection, stream: OrderStream) -> None:
    """Retried requests (same Idempotency-Key) never made a second order."""
    users = [shopper.user_id for shopper in stream.shoppers]
    count = await db.fetchval(
        "SELECT count(*) FROM orders.orders WHERE user_id = ANY($1::uuid[])", users
    )
    assert count == len(stream.placed)
