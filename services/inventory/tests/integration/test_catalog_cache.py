"""The catalog cache over the real Redis and Postgres: hits, invalidation after every kind of
write, the freshness bound when an invalidation is lost, Redis away, stampedes, switched off."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aio_pika
import httpx
import pytest
import redis.asyncio
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory import worker
from inventory.catalog.cache import CatalogCache
from inventory.config import InventorySettings
from inventory.events import ProcessedEvent
from inventory.handlers import RESERVATIONS_CONSUMER, STOCK_ALERTS_CONSUMER
from inventory.main import create_app
from inventory.stock.service import adjust_stock
from shared.contracts.money import Money
from shared.contracts.orders import OrderCreated, OrderLine
from shared.messaging import Broker, Envelope
from shared.messaging.broker import OutgoingMessage
from shared.messaging.topology import dlq_name, queue_name, refused_queue_name
from shared.testing import app_client

PRODUCTS = "/api/v1/products"
LONG = 60.0  # a freshness bound no test outlives: a fresh answer can only come of invalidation
DEADLINE_SECONDS = 30  # a generous bound on waiting, not a speed requirement


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def hits() -> float:
    return counter("inventory_catalog_cache_lookups_total", result="hit")


def loads() -> float:
    return counter("inventory_catalog_cache_loads_total")


class ProductReads:
    """Counts the statements an app's engine sends that read the products table."""

    def __init__(self, app: FastAPI) -> None:
        self.count = 0
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "products" in statement:
            self.count += 1


@contextlib.asynccontextmanager
async def serving(settings: InventorySettings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    app = create_app(settings)
    async with app_client(app) as client:
        yield client, app


def cached(settings: InventorySettings, **changes: Any) -> InventorySettings:
    # A Redis timeout far above the default: on a loaded test machine a slow call must not
    # send reads to the database and make the counts below lie.
    defaults = {"catalog_cache_freshness_seconds": LONG, "catalog_cache_redis_timeout_seconds": 5.0}
    return settings.model_copy(update={**defaults, **changes})


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def create(client: httpx.AsyncClient, admin: dict[str, str], sku: str, stock: int) -> None:
    body = {
        "sku": sku,
        "name": f"Cached {sku}",
        "price": {"amount": 1200, "currency": "USD"},
        "initial_stock": stock,
    }
    response = await client.post(PRODUCTS, json=body, headers=admin)
    assert response.status_code == 201, response.text


async def available(client: httpx.AsyncClient, sku: str) -> int:
    response = await client.get(f"{PRODUCTS}/{sku}")
    assert response.status_code == 200, response.text
    value: int = response.json()["available"]
    return value


async def listed(client: httpx.AsyncClient, sku: str) -> dict[str, Any]:
    response = await client.get(PRODUCTS, params={"q": sku})
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    return dict(item)


async def test_a_second_public_read_is_a_cache_hit_with_the_same_body_and_etag(
    settings: InventorySettings, admin: dict[str, str], customer: dict[str, str], sku: str
) -> None:
    async with serving(cached(settings)) as (client, app):
        await create(client, admin, sku, 5)
        reads = ProductReads(app)
        first = await client.get(f"{PRODUCTS}/{sku}")
        before = hits()
        second = await client.get(f"{PRODUCTS}/{sku}", headers=customer)
        not_modified = await client.get(
            f"{PRODUCTS}/{sku}", headers={"If-None-Match": first.headers["ETag"]}
        )
        page = await client.get(PRODUCTS, params={"q": sku})
        page_again = await client.get(PRODUCTS, params={"q": sku})

    assert reads.count == 2  # the first read of the product, the first of the page
    assert hits() - before == 3
    assert second.content == first.content
    assert second.headers["ETag"] == first.headers["ETag"]
    # What differs by caller is computed per request, never cached.
    assert first.headers["Cache-Control"].startswith("public")
    assert second.headers["Cache-Control"] == "private, no-cache"
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert page_again.content == page.content


async def test_admins_read_the_database_and_see_inactive_products(
    settings: InventorySettings, admin: dict[str, str], sku: str
) -> None:
    async with serving(cached(settings)) as (client, app):
        await create(client, admin, sku, 5)
        await client.patch(f"{PRODUCTS}/{sku}", json={"active": False}, headers=admin)
        reads = ProductReads(app)
        public = await client.get(f"{PRODUCTS}/{sku}")
        for _ in range(2):
            as_admin = await client.get(f"{PRODUCTS}/{sku}", headers=admin)
            assert as_admin.status_code == 200
            assert as_admin.json()["active"] is False
            assert as_admin.headers["Cache-Control"] == "private, no-cache"
    assert public.status_code == 404
    assert reads.count == 3  # the 404 (never cached) and both admin reads


async def test_a_product_edit_is_seen_by_the_very_next_read(
    settings: InventorySettings, admin: dict[str, str], sku: str
) -> None:
    async with serving(cached(settings)) as (client, _):
        await create(client, admin, sku, 5)
        assert (await client.get(f"{PRODUCTS}/{sku}")).json()["price"]["amount"] == 1200
        assert (await listed(client, sku))["price"]["amount"] == 1200

        changed = {"price": {"amount": 999, "currency": "USD"}}
        assert (await client.patch(f"{PRODUCTS}/{sku}", json=changed, headers=admin)).is_success
        assert (await client.get(f"{PRODUCTS}/{sku}")).json()["price"]["amount"] == 999
        assert (await listed(client, sku))["price"]["amount"] == 999

        await client.patch(f"{PRODUCTS}/{sku}", json={"active": False}, headers=admin)
        assert (await client.get(f"{PRODUCTS}/{sku}")).status_code == 404
        page = await client.get(PRODUCTS, params={"q": sku})
        assert page.json()["items"] == []


async def test_a_new_product_appears_on_a_cached_list_page_at_once(
    settings: InventorySettings, admin: dict[str, str], make_sku: Callable[[], str]
) -> None:
    tag = uuid.uuid4().hex[:10].upper()
    first, second = f"T-{tag}-A", f"T-{tag}-B"
    async with serving(cached(settings)) as (client, _):
        await create(client, admin, first, 1)
        assert len((await client.get(PRODUCTS, params={"q": tag})).json()["items"]) == 1
        await create(client, admin, second, 1)
        items = (await client.get(PRODUCTS, params={"q": tag})).json()["items"]
    assert [item["sku"] for item in items] == [first, second]


async def test_a_stock_adjustment_is_seen_by_the_very_next_read(
    settings: InventorySettings, admin: dict[str, str], sku: str
) -> None:
    async with serving(cached(settings)) as (client, _):
        await create(client, admin, sku, 5)
        assert await available(client, sku) == 5
        assert (await listed(client, sku))["available"] == 5
        adjustment = {"delta": 7, "reason": "delivery"}
        response = await client.post(
            f"{PRODUCTS}/{sku}/stock-adjustments", json=adjustment, headers=admin
        )
        assert response.status_code == 201, response.text
        assert await available(client, sku) == 12
        assert (await listed(client, sku))["available"] == 12


async def test_a_cached_value_never_outlives_the_freshness_bound_when_its_invalidation_is_lost(
    settings: InventorySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    admin: dict[str, str],
    sku: str,
) -> None:
    freshness = 1.0
    async with serving(cached(settings, catalog_cache_freshness_seconds=freshness)) as (client, _):
        await create(client, admin, sku, 5)
        read_at = time.monotonic()
        assert await available(client, sku) == 5
        assert (await listed(client, sku))["available"] == 5
        # Through an engine no cache is attached to: the write commits, its invalidation is lost.
        async with sessionmaker() as session:
            await adjust_stock(session=session, sku=sku, delta=-2, reason="lost", actor="test")
        assert await available(client, sku) == 5  # stale: the invalidation really was lost

        async with asyncio.timeout(DEADLINE_SECONDS):
            while True:
                if (
                    await available(client, sku) == 3
                    and (await listed(client, sku))["available"] == 3
                ):
                    break
                await asyncio.sleep(0.02)
        fresh_after = time.monotonic() - read_at
    # A margin for the polling reads, none for the TTL itself: it counts from the read.
    assert fresh_after < freshness + 0.3


async def test_the_stored_ttl_is_no_longer_than_the_freshness_bound(
    settings: InventorySettings, admin: dict[str, str], sku: str
) -> None:
    bounded = cached(settings, catalog_cache_freshness_seconds=2.0)
    async with serving(bounded) as (client, _):
        await create(client, admin, sku, 5)
        await available(client, sku)
    client_redis = redis.asyncio.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        ttl = await client_redis.pttl(f"{bounded.catalog_cache_prefix}:product:{sku}")
    finally:
        await client_redis.aclose()
    assert 0 < ttl <= 2000


async def test_concurrent_misses_of_one_product_read_the_database_once(
    settings: InventorySettings, admin: dict[str, str], sku: str
) -> None:
    async with serving(cached(settings)) as (client, app):
        await create(client, admin, sku, 5)
        reads = ProductReads(app)
        before = loads()
        answers = await asyncio.gather(*(client.get(f"{PRODUCTS}/{sku}") for _ in range(40)))
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.content for answer in answers}) == 1
    assert reads.count == 1
    assert loads() - before == 1


async def test_concurrent_misses_on_two_replicas_read_the_database_once(
    settings: InventorySettings, admin: dict[str, str], sku: str
) -> None:
    """The second replica finds the first one's Redis lock and waits for its value."""
    async with (
        serving(cached(settings)) as (one, app_one),
        serving(cached(settings)) as (
            two,
            app_two,
        ),
    ):
        await create(one, admin, sku, 5)
        reads_one, reads_two = ProductReads(app_one), ProductReads(app_two)
        answers = await asyncio.gather(
            *(replica.get(f"{PRODUCTS}/{sku}") for replica in (one, two) * 10)
        )
    assert {answer.status_code for answer in answers} == {200}
    assert reads_one.count + reads_two.count == 1


class RedisProxy:
    """A TCP relay to the real Redis that can be taken down and brought back on one port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._links:
            writer.close()
        await self._server.wait_closed()
        self._links.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self._links.update((writer, up_writer))

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_with_redis_away_reads_come_from_the_database_and_the_cache_comes_back_by_itself(
    settings: InventorySettings, admin: dict[str, str], sku: str
) -> None:
    proxy = RedisProxy(closed_port())
    await proxy.up()
    through_proxy = cached(
        settings,
        redis_url=SecretStr(f"redis://127.0.0.1:{proxy.port}/0"),
        catalog_cache_retry_seconds=0.2,
    )
    async with serving(through_proxy) as (client, app):
        await create(client, admin, sku, 5)
        await available(client, sku)
        before = hits()
        await available(client, sku)
        assert hits() - before == 1

        await proxy.down()
        reads = ProductReads(app)
        started = time.monotonic()
        for _ in range(20):
            assert await available(client, sku) == 5
            assert (await listed(client, sku))["available"] == 5
        elapsed = time.monotonic() - started
        # A write while Redis is away: answered, and its invalidation is skipped.
        adjustment = {"delta": 1, "reason": "while redis is away"}
        response = await client.post(
            f"{PRODUCTS}/{sku}/stock-adjustments", json=adjustment, headers=admin
        )
        assert response.status_code == 201
        ready = await client.get("/health/ready")
        assert reads.count >= 40  # every read went to the database
        assert elapsed < 5  # no long wait per request

        await proxy.up()
        async with asyncio.timeout(DEADLINE_SECONDS):
            while True:
                before = hits()
                assert await available(client, sku) == 6
                if hits() > before:
                    break
                await asyncio.sleep(0.05)
        await proxy.down()
    assert ready.status_code == 200
    assert "redis" not in ready.json()["checks"]


async def test_with_redis_unreachable_from_the_start_reads_and_readiness_answer_200(
    settings: InventorySettings, admin: dict[str, str], sku: str
) -> None:
    nowhere = cached(settings, redis_url=SecretStr(f"redis://127.0.0.1:{closed_port()}/0"))
    async with serving(nowhere) as (client, _):
        await create(client, admin, sku, 5)
        assert await available(client, sku) == 5
        assert (await listed(client, sku))["available"] == 5
        ready = await client.get("/health/ready")
    assert ready.status_code == 200


class ConnectionCounter:
    """A listening socket that only counts who connects to it (and says nothing)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port


async def test_switched_off_the_cache_never_touches_redis(
    settings: InventorySettings, admin: dict[str, str], sku: str
) -> None:
    listener = ConnectionCounter()
    port = await listener.start()
    off = cached(
        settings, catalog_cache_enabled=False, redis_url=SecretStr(f"redis://127.0.0.1:{port}/0")
    )
    before = (hits(), loads())
    async with serving(off) as (client, app):
        await create(client, admin, sku, 5)
        reads = ProductReads(app)
        for _ in range(3):
            assert await available(client, sku) == 5
            assert (await listed(client, sku))["available"] == 5
        read_from_database = reads.count
        await client.patch(f"{PRODUCTS}/{sku}", json={"name": "renamed"}, headers=admin)
        assert (await client.get(f"{PRODUCTS}/{sku}")).json()["name"] == "renamed"
    assert listener.server is not None
    listener.server.close()
    assert listener.connections == 0
    assert read_from_database == 6  # every read went to the database
    assert (hits(), loads()) == before


# -- the worker's writes ----------------------------------------------------------------------


@pytest.fixture
async def broker(settings: InventorySettings) -> AsyncIterator[Broker]:
    broker = Broker(settings)
    await broker.connect()
    try:
        yield broker
    finally:
        channel = await broker.channel()
        for purpose in (RESERVATIONS_CONSUMER, STOCK_ALERTS_CONSUMER):
            name = queue_name(settings, purpose)
            await channel.queue_delete(name)
            await channel.queue_delete(dlq_name(name))
            await channel.queue_delete(refused_queue_name(name))
        await broker.close()


@pytest.fixture
async def running_worker(settings: InventorySettings, broker: Broker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(settings, stop=stop, install_signal_handlers=False))
    channel = await broker.channel()
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            while True:
                try:
                    await channel.declare_queue(
                        queue_name(settings, RESERVATIONS_CONSUMER), passive=True
                    )
                    break
                except aio_pika.exceptions.ChannelClosed:
                    channel = await broker.channel()
                    await asyncio.sleep(0.1)
        yield
    finally:
        stop.set()
        await task


async def wait_processed(sessionmaker: async_sessionmaker[AsyncSession], event: Envelope) -> None:
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            async with sessionmaker() as session:
                found = await session.scalar(
                    select(ProcessedEvent.event_id).where(ProcessedEvent.event_id == event.id)
                )
            if found is not None:
                return
            await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_a_reservation_by_the_worker_is_seen_by_the_next_read(
    settings: InventorySettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    admin: dict[str, str],
    sku: str,
    broker: Broker,
    running_worker: None,
) -> None:
    async with serving(cached(settings)) as (client, _):
        await create(client, admin, sku, 10)
        assert await available(client, sku) == 10
        assert (await listed(client, sku))["available"] == 10

        price = Money(amount=1200, currency="USD")
        created = Envelope.new(
            OrderCreated(
                order_id=uuid.uuid4(),
                user_id=uuid.uuid4(),
                items=[OrderLine(sku=sku, quantity=4, unit_price=price)],
                total=Money(amount=4800, currency="USD"),
            )
        )
        publisher = await broker.publisher()
        await publisher.publish(OutgoingMessage(str(created.id), created.type, created.to_bytes()))
        await wait_processed(sessionmaker, created)
        # The worker tells the cache as its commit returns, a moment after the commit is
        # visible; within a second, with a freshness bound of a minute, only the
        # invalidation can explain the fresh figures.
        async with asyncio.timeout(1.0):
            while True:
                if await available(client, sku) == 6:
                    break
                await asyncio.sleep(0.01)
        assert (await listed(client, sku))["available"] == 6


def test_the_cache_key_prefix_follows_the_broker_namespace(settings: InventorySettings) -> None:
    assert settings.model_copy(update={"broker_namespace": "run-1"}).catalog_cache_prefix == (
        "commerce:run-1:catalog"
    )
    assert settings.model_copy(update={"broker_namespace": ""}).catalog_cache_prefix == (
        "commerce:default:catalog"
    )


# -- the cache alone, over the real Redis: reads racing an invalidation ----------------------


async def test_a_body_read_before_an_invalidation_and_stored_after_it_is_never_served(
    settings: InventorySettings, sku: str
) -> None:
    cache = CatalogCache(cached(settings))
    release = asyncio.Event()

    async def read_before_the_write() -> bytes:
        await release.wait()
        return b'{"old": true}'

    async def read_after_the_write() -> bytes:
        return b'{"new": true}'

    try:
        slow = asyncio.create_task(cache.product(sku, read_before_the_write))
        await asyncio.sleep(0.05)  # its generation read, its database read under way
        await cache.invalidate(frozenset({sku}))
        # Not joined to the read under way: that one began before the write.
        assert await cache.product(sku, read_after_the_write) == b'{"new": true}'
        release.set()
        assert await slow == b'{"old": true}'  # its caller, who asked before the write
        # Stored after the invalidation, but tagged with the generation before it: a miss.
        assert await cache.product(sku, read_after_the_write) == b'{"new": true}'
    finally:
        await cache.close()


async def test_an_image_uploaded_or_deleted_is_seen_by_the_very_next_read(
    settings: InventorySettings, admin: dict[str, str], sku: str, tmp_path: Any
) -> None:
    image = b"\x89PNG\r\n\x1a\n" + bytes(1024)
    async with serving(cached(settings, media_root=str(tmp_path))) as (client, _):
        await create(client, admin, sku, 1)
        assert (await client.get(f"{PRODUCTS}/{sku}")).json()["images"] == []
        uploaded = await client.post(
            f"{PRODUCTS}/{sku}/media",
            content=image,
            headers={**admin, "Content-Type": "image/png"},
        )
        assert uploaded.status_code == 201, uploaded.text
        media_id = uploaded.json()["id"]
        images = (await client.get(f"{PRODUCTS}/{sku}")).json()["images"]
        assert [item["id"] for item in images] == [media_id]

        deleted = await client.delete(f"{PRODUCTS}/{sku}/media/{media_id}", headers=admin)
        assert deleted.status_code == 204
        assert (await client.get(f"{PRODUCTS}/{sku}")).json()["images"] == []
