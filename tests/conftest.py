"""Fixtures of the whole-platform suites: one platform per run, shared where it can be.

The platform (``tests.harness``) starts on first use and stops at the end of the run; the
logs of every process are attached to the report of a test that failed while it ran.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import TypeVar

import asyncpg
import httpx
import pytest

from tests.harness import database as platform_database
from tests.harness.platform import Platform
from tests.harness.retrying import RetryingTransport
from tests.harness.storefront import Shopper, Storefront, create_admin, new_email
from tests.harness.topology import delete_namespace

PLATFORM = pytest.StashKey[Platform]()
REPLICA_SECONDS = 60.0

ProductFactory = Callable[..., Awaitable[str]]
P = TypeVar("P", bound=Platform)


def platform_fixture(kind: Callable[..., P], suffix: str) -> object:
    """A session fixture named ``platform``: a platform of ``kind`` started on a database and
    broker namespace of its own (named after ``suffix``), whose logs reach the report of a
    failed test; stopped, its namespace deleted and its database dropped at the end."""

    @pytest.fixture(scope="session", name="platform")
    def platform(
        database: str,
        db_init_sql: str,
        tmp_path_factory: pytest.TempPathFactory,
        pytestconfig: pytest.Config,
    ) -> Iterator[P]:
        """The running platform the tests of this folder talk to (``platform_fixture``)."""
        name = f"{database}_{suffix}"
        namespace = f"{os.environ['COMMERCE_BROKER_NAMESPACE']}.{suffix}"
        platform_database.prepare(name, db_init_sql)
        started = kind(database=name, namespace=namespace, log_dir=tmp_path_factory.mktemp(suffix))
        logged: Platform = started
        pytestconfig.stash[PLATFORM] = logged
        try:
            started.start()
            yield started
        finally:
            started.stop()
            del pytestconfig.stash[PLATFORM]
            platform_database.run_in_thread(delete_namespace(namespace))
            if not pytestconfig.getoption("--keep-database"):
                platform_database.drop(name)

    return platform


# Gateway, services and workers, running, on a database and namespace of their own.
platform = platform_fixture(Platform, "platform")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of the running platform go last, so it stops (and gives its database
    connections back) as soon as they are done, not after every other suite."""
    items.sort(key=lambda item: "platform" in getattr(item, "fixturenames", ()))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    platform = item.config.stash.get(PLATFORM, None)
    if report.failed and platform is not None:
        report.sections.append(("platform logs", platform.logs()))
    return report


@pytest.fixture(scope="session")
async def gateway_client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A storefront's HTTP client: the gateway, and nothing else."""
    transport = RetryingTransport(
        httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100))
    )
    async with httpx.AsyncClient(
        base_url=platform.gateway, timeout=60, transport=transport
    ) as client:
        yield client


@pytest.fixture(scope="session")
def shop(gateway_client: httpx.AsyncClient) -> Storefront:
    return Storefront(gateway_client)


@pytest.fixture(scope="session")
async def admin(platform: Platform, shop: Storefront) -> Shopper:
    """An admin created by the operator's command, logged in through the gateway."""
    email = new_email("admin")
    await asyncio.to_thread(create_admin, platform, email)
    return await shop.login(email)


@pytest.fixture
async def customer(shop: Storefront) -> Shopper:
    return await shop.new_customer()


@pytest.fixture
async def db(platform: Platform) -> AsyncIterator[asyncpg.Connection]:
    """The platform's database as the superuser: tests may read every schema."""
    connection = await platform_database.connect(platform.database)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
def product(shop: Storefront, admin: Shopper, db: asyncpg.Connection) -> ProductFactory:
    """``await product(stock=10)``: a new product, created by the admin through the gateway,
    once the orders service's price replica knows it (it learns from an event)."""

    async def create(*, stock: int, price: int = 1999, sku: str | None = None) -> str:
        sku = await shop.create_product(admin, stock=stock, price=price, sku=sku)
        async with asyncio.timeout(REPLICA_SECONDS):
            while True:
                if await db.fetchval("SELECT 1 FROM orders.catalog_prices WHERE sku = $1", sku):
                    return sku
                await asyncio.sleep(0.1)

    return create
