"""One order, one trace: every process of a traced platform exports to a local OTLP receiver.

The platform here is a second one, of its own (database, namespace, ports), started with the
``OTEL_*`` variables pointing at ``tests.harness.otlp``; the suite's shared platform keeps
tracing off.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.harness import database as platform_database
from tests.harness.otlp import OtlpReceiver, ReceivedSpan, tracing_environment
from tests.harness.platform import Platform
from tests.harness.storefront import PASSWORD, VISA, Shopper, Storefront, create_admin, new_email
from tests.harness.topology import delete_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SPANS_SECONDS = 60.0  # bound on the exports' arrival; only stops a hung test
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
ORDER_ROUTE = "POST /api/v1/orders/{path}"


@dataclass
class TracedPlatform(Platform):
    otlp_endpoint: str = ""

    def _settings(self) -> dict[str, str]:
        return {**super()._settings(), **tracing_environment(self.otlp_endpoint)}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def traced_platform(
    database: str,
    db_init_sql: str,
    tmp_path_factory: pytest.TempPathFactory,
    receiver: OtlpReceiver,
) -> Iterator[TracedPlatform]:
    name = f"{database}_traced"
    namespace = f"{os.environ['COMMERCE_BROKER_NAMESPACE']}.traced"
    platform_database.prepare(name, db_init_sql)
    platform = TracedPlatform(
        database=name,
        namespace=namespace,
        log_dir=tmp_path_factory.mktemp("traced-platform-logs"),
        otlp_endpoint=receiver.endpoint,
    )
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
        platform_database.run_in_thread(delete_namespace(namespace))
        platform_database.drop(name)


@pytest.fixture
async def traced_db(traced_platform: TracedPlatform) -> AsyncIterator[asyncpg.Connection]:
    connection = await platform_database.connect(traced_platform.database)
    try:
        yield connection
    finally:
        await connection.close()


@dataclass
class Placed:
    order_id: str
    admin: Shopper
    shopper: Shopper


async def _stocked_product(platform: TracedPlatform, db: asyncpg.Connection) -> tuple[Shopper, str]:
    """A new admin and a product with stock whose price orders has learnt (from an event)."""
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=60) as client:
        shop = Storefront(client)
        email = new_email("admin")
        await asyncio.to_thread(create_admin, platform, email)
        admin = await shop.login(email)
        sku = await shop.create_product(admin, stock=5)
    async with asyncio.timeout(SPANS_SECONDS):
        while True:
            if await db.fetchval("SELECT 1 FROM orders.catalog_prices WHERE sku = $1", sku):
                return admin, sku
            await asyncio.sleep(0.1)


async def _place_one_order(platform: TracedPlatform, db: asyncpg.Connection) -> Placed:
    admin, sku = await _stocked_product(platform, db)
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=60) as client:
        shop = Storefront(client)
        shopper = await shop.new_customer()
        placed = await shop.place_order(shopper, {sku: 1})
        assert placed.status_code == 202, placed.text
        order = await shop.wait_settled(shopper, placed.json()["id"])
        assert order["status"] == "confirmed", platform.logs()
        return Placed(order["id"], admin, shopper)


async def _stored_traceparents(db: asyncpg.Connection, order_id: str) -> list[str]:
    """The trace context every outbox row of the order stores, in every schema."""
    stored: list[str] = []
    for schema in ("orders", "inventory", "payments"):
        rows = await db.fetch(
            f"SELECT trace_context FROM {schema}.outbox "  # noqa: S608 (our schemas)
            "WHERE body->'data'->>'order_id' = $1",
            order_id,
        )
        assert rows, schema
        stored += [json.loads(row["trace_context"])["traceparent"] for row in rows]
    return stored


class Trace:
    """The spans of one trace, and questions about their tree."""

    def __init__(self, spans: list[ReceivedSpan]) -> None:
        self.spans = spans
        self.by_id = {span.span_id: span for span in spans}

    def find(self, service: str, kind: str, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if (s.service, s.kind, s.name) == (service, kind, name)]

    def one(self, service: str, kind: str, name: str) -> ReceivedSpan:
        found = self.find(service, kind, name)
        assert len(found) == 1, (service, kind, name, self.describe())
        return found[0]

    def ancestors(self, span: ReceivedSpan) -> list[ReceivedSpan]:
        chain = []
        while span.parent_span_id in self.by_id:
            span = self.by_id[span.parent_span_id]
            chain.append(span)
        return chain

    def describe(self) -> str:
        return "\n".join(
            f"{s.service:17} {s.kind:8} {s.name} {s.span_id} <- {s.parent_span_id}"
            for s in self.spans
        )


# Every hop of the saga: (process, span kind, span name).
HOPS = [
    ("orders-worker", "PRODUCER", "publish orders.order_created"),
    ("inventory-worker", "CONSUMER", "process orders.order_created"),
    ("inventory-worker", "PRODUCER", "publish inventory.stock_reserved"),
    ("orders-worker", "CONSUMER", "process inventory.stock_reserved"),
    ("orders-worker", "PRODUCER", "publish orders.payment_requested"),
    ("payments-worker", "CONSUMER", "process orders.payment_requested"),
    ("payments-worker", "PRODUCER", "publish payments.payment_succeeded"),
    ("orders-worker", "CONSUMER", "process payments.payment_succeeded"),
    ("orders-worker", "PRODUCER", "publish orders.order_confirmed"),
    ("inventory-worker", "CONSUMER", "process orders.order_confirmed"),
]


async def _order_trace(receiver: OtlpReceiver) -> Trace:
    """The trace of the one order placed, once every hop's span has arrived."""
    async with asyncio.timeout(SPANS_SECONDS):
        while True:
            spans = receiver.spans()
            roots = [
                s
                for s in spans
                if (s.service, s.kind, s.name) == ("gateway", "SERVER", ORDER_ROUTE)
            ]
            if roots:
                trace = Trace([s for s in spans if s.trace_id == roots[0].trace_id])
                arrived = {(s.service, s.kind, s.name) for s in trace.spans}
                if all(hop in arrived for hop in HOPS):
                    return trace
            await asyncio.sleep(0.2)


async def test_one_order_is_one_trace_across_the_gateway_the_services_and_the_workers(
    traced_platform: TracedPlatform, receiver: OtlpReceiver, traced_db: asyncpg.Connection
) -> None:
    placed = await _place_one_order(traced_platform, traced_db)
    trace = await _order_trace(receiver)

    # HTTP: the gateway's server span is the root, its client span carried the context on.
    entry = trace.one("gateway", "SERVER", ORDER_ROUTE)
    assert entry.parent_span_id == ""
    forwarded = trace.find("gateway", "CLIENT", "POST")  # two if a stale connection was retried
    assert forwarded
    assert {s.parent_span_id for s in forwarded} == {entry.span_id}
    [served] = [s for s in trace.spans if s.service == "orders" and s.kind == "SERVER"]
    assert served.parent_span_id in {s.span_id for s in forwarded}
    # Instrumented clients: Redis (the rate limit) in the gateway, Postgres in the service.
    assert any(
        s.attributes.get("db.system") == "redis" and entry in trace.ancestors(s)
        for s in trace.spans
    )
    assert any(
        s.attributes.get("db.system") == "postgresql" and served in trace.ancestors(s)
        for s in trace.spans
    )

    # AMQP: each publish continues what wrote the outbox row; each consumer continues the
    # publish; every hop of the saga is in this one trace.
    previous = served
    for service, kind, name in HOPS:
        span = trace.one(service, kind, name)
        if kind == "PRODUCER":
            assert previous in trace.ancestors(span), (name, trace.describe())
        else:
            assert trace.by_id[span.parent_span_id] == previous, (name, trace.describe())
        previous = span
    prepared = trace.one("payments-worker", "CONSUMER", "prepare orders.payment_requested")
    assert prepared.parent_span_id == trace.one(*HOPS[4]).span_id
    assert {s.service for s in trace.spans} == {
        "gateway",
        "orders",
        "orders-worker",
        "inventory-worker",
        "payments-worker",
    }
    # Every span's parent is in the trace, but the root's.
    assert [s for s in trace.spans if s.parent_span_id not in trace.by_id] == [entry]

    # The outbox rows of the order carry its trace context, and nothing else.
    for schema in ("orders", "inventory", "payments"):
        rows = await traced_db.fetch(
            f"SELECT trace_context FROM {schema}.outbox "  # noqa: S608 (our schemas)
            "WHERE body->'data'->>'order_id' = $1",
            placed.order_id,
        )
        assert rows, schema
        for row in rows:
            stored = json.loads(row["trace_context"])
            assert set(stored) <= {"traceparent", "tracestate"}, stored
            match = TRACEPARENT.fullmatch(stored["traceparent"])
            assert match is not None, stored
            assert match.group(1) == entry.trace_id, stored

    # Log lines carry the trace and span ids.
    gateway_log = traced_platform.processes["gateway"].log_text()
    assert f'"trace_id":"{entry.trace_id}"' in gateway_log.replace(" ", "")

    # No secret in any span of the run: payment token, password, access token, bearer.
    secrets = [VISA, PASSWORD, placed.admin.access_token, placed.shopper.access_token]
    for span in receiver.spans():
        for text in _texts(span):
            assert not any(secret in text for secret in secrets), (span.name, text)
            assert "bearer" not in text.lower(), (span.name, text)
            assert not re.search(r"eyJ[\w-]+\.eyJ", text), (span.name, text)


def _texts(span: ReceivedSpan) -> list[str]:
    """Every attribute value of a span (its links' and events' included) as text."""
    found: list[str] = []
    for attributes in [span.attributes, *span.link_attributes, *span.event_attributes]:
        found += [str(key) + "=" + _flat(value) for key, value in attributes.items()]
    return found


def _flat(value: Any) -> str:
    return json.dumps(value, default=str) if not isinstance(value, str) else value


async def test_an_order_whose_trace_is_not_sampled_leaves_no_span_and_carries_its_context_on(
    traced_platform: TracedPlatform, receiver: OtlpReceiver, traced_db: asyncpg.Connection
) -> None:
    """Sent straight to the orders service with a ``traceparent`` whose sampled flag is off
    (as the gateway sends the requests it does not sample), the order's saga runs to the end,
    no process exports a span of it, and every event of it carries the trace on, unsampled:
    no process downstream starts a trace of its own."""
    _, sku = await _stocked_product(traced_platform, traced_db)
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-00"
    async with httpx.AsyncClient(base_url=traced_platform.gateway, timeout=60) as client:
        shopper = await Storefront(client).new_customer()
    async with httpx.AsyncClient(
        base_url=traced_platform.url("orders"), timeout=60, headers={"traceparent": traceparent}
    ) as direct:
        shop = Storefront(direct)
        placed = await shop.place_order(shopper, {sku: 1})
        assert placed.status_code == 202, placed.text
        order = await shop.wait_settled(shopper, placed.json()["id"])
    assert order["status"] == "confirmed", traced_platform.logs()

    stored = await _stored_traceparents(traced_db, order["id"])
    assert len(stored) >= 4  # order_created, payment_requested, stock_reserved, succeeded...
    for sent in stored:
        assert re.fullmatch(f"00-{trace_id}-[0-9a-f]{{16}}-00", sent), sent

    # A sampled order placed after it arrives whole: by then each process has exported what it
    # did before, and none of it is in the unsampled order's trace.
    later = await _place_one_order(traced_platform, traced_db)
    later_trace_ids = {
        sent.split("-")[1] for sent in await _stored_traceparents(traced_db, later.order_id)
    }
    [later_trace_id] = later_trace_ids
    async with asyncio.timeout(SPANS_SECONDS):
        while True:
            arrived = {
                (s.service, s.kind, s.name)
                for s in receiver.spans()
                if s.trace_id == later_trace_id
            }
            if HOPS[-1] in arrived:
                break
            await asyncio.sleep(0.2)
    assert [s for s in receiver.spans() if s.trace_id == trace_id] == []
