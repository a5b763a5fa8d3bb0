"""What only replicas can break: two of every process behind HAProxy (``make replicas``).

- a replica of each kind killed with SIGKILL under a steady stream of orders, one after the
  other: every order is accepted, settles, is charged at most once, and the books balance;
- a rolling restart (SIGTERM, then back in rotation, one replica at a time): no request fails
  at the load balancer, and no message is redelivered into a second effect;
- the relays, sweepers and reconcilers of both replicas never act twice (counted), and the
  two inventory sweepers release each expired reservation once;
- a client's rate limit holds across both gateways, and a token one gateway issued passes
  the other gateway and every service replica.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest

from tests.faults.conftest import assert_books_balance, assert_each_order_placed_once, books_of
from tests.faults.test_dlq_replay import dlq
from tests.harness import broker
from tests.harness.load import OrderStream
from tests.harness.storefront import PASSWORD, Shopper, Storefront
from tests.replicas.harness import LOGIN_LIMIT, ReplicaPlatform

pytestmark = [pytest.mark.replicas, pytest.mark.slow]

TERMINAL = {"confirmed", "rejected", "cancelled", "refunded"}
KINDS = (
    "gateway",
    "inventory",
    "orders",
    "payments",
    "inventory-worker",
    "orders-worker",
    "payments-worker",
)
ORDERS = 240
STREAMS = 4
KILL_EVERY_SECONDS = 10.0
FIRST_KILL_SECONDS = 5.0


def _split(stream: OrderStream, parts: int) -> list[OrderStream]:
    """``parts`` streams of their own shoppers, on the same products, placing at once."""
    return [
        OrderStream(shop=stream.shop, shoppers=stream.shoppers[i::parts], skus=stream.skus)
        for i in range(parts)
    ]


async def test_killing_one_replica_of_each_kind_under_load_loses_no_order_and_repeats_no_effect(
    platform: ReplicaPlatform, stream: OrderStream, db: asyncpg.Connection
) -> None:
    streams = _split(stream, STREAMS)
    killed: list[str] = []

    async def kill_each_kind() -> None:
        await asyncio.sleep(FIRST_KILL_SECONDS)
        restarts = []
        for i, kind in enumerate(KINDS):
            name = platform.names(kind)[i % 2]
            platform.processes[name].kill()  # a crash: no drain, no ack
            killed.append(name)
            # What the supervisor of make replicas does: start it again.
            restarts.append(asyncio.create_task(asyncio.to_thread(platform.restart_replica, name)))
            await asyncio.sleep(KILL_EVERY_SECONDS)
        await asyncio.gather(*restarts)

    started = time.monotonic()
    await asyncio.gather(
        kill_each_kind(), *(s.place(ORDERS // STREAMS, pause=0.8) for s in streams)
    )
    placing = time.monotonic() - started

    assert len(killed) == len(KINDS)
    placed = [p for s in streams for p in s.placed]
    assert len(placed) == ORDERS, "every order is eventually accepted"
    stream.placed = placed
    statuses = await stream.settled()
    assert set(statuses) <= TERMINAL, Counter(statuses)
    assert "confirmed" in statuses
    await assert_each_order_placed_once(db, stream)
    assert_books_balance(await books_of(platform))
    assert placing < 240, f"the stream took {placing:.0f} s"


FAILED_AT_LB = {502, 503, 504}


async def _traffic(
    client: httpx.AsyncClient,
    shop: Storefront,
    shopper: Shopper,
    skus: list[str],
    stop: asyncio.Event,
    failures: list[str],
    orders: list[str],
) -> None:
    """Reads and idempotent order placements, each sent once (no client retry), until stop."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            products = await client.get("/api/v1/products", params={"limit": 5})
            mine = await client.get("/api/v1/orders", headers=shopper.headers)
            placed = await shop.place_order(shopper, {skus[n % len(skus)]: 1}, key=uuid.uuid4().hex)
        except httpx.TransportError as exc:
            failures.append(repr(exc))
            continue
        for reply in (products, mine, placed):
            if reply.status_code in FAILED_AT_LB or reply.status_code >= 500:
                failures.append(
                    f"{reply.request.method} {reply.request.url.path}: {reply.status_code}"
                )
        if placed.status_code == 202:
            orders.append(placed.json()["id"])
        await asyncio.sleep(0.5)


async def test_a_rolling_restart_fails_no_request_at_the_load_balancer_and_repeats_no_effect(
    platform: ReplicaPlatform, stream: OrderStream, db: asyncpg.Connection
) -> None:
    failures: list[str] = []
    placed: list[tuple[Shopper, str]] = []
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=platform.gateway, timeout=60) as client:
        shop = Storefront(client)
        per_shopper: list[list[str]] = [[] for _ in stream.shoppers[:3]]
        traffic = [
            asyncio.create_task(
                _traffic(client, shop, shopper, stream.skus, stop, failures, orders)
            )
            for shopper, orders in zip(stream.shoppers, per_shopper, strict=False)
        ]
        try:
            for kind in KINDS:
                for name in platform.names(kind):
                    await asyncio.to_thread(platform.processes[name].stop)  # SIGTERM, drain
                    await asyncio.to_thread(platform.restart_replica, name)
        finally:
            stop.set()
            await asyncio.gather(*traffic)
        for shopper, orders in zip(stream.shoppers, per_shopper, strict=False):
            placed += [(shopper, order_id) for order_id in orders]

    assert not failures, f"{len(failures)} requests failed at the load balancer: {failures[:10]}"
    assert placed, "orders were placed during the roll"
    settled = await asyncio.gather(*(stream.shop.wait_settled(s, o) for s, o in placed))
    assert {order["status"] for order in settled} <= TERMINAL
    assert_books_balance(await books_of(platform))


METRIC = re.compile(
    r"^(messaging_events_(?:published|duplicate)_total)\{[^}]*\} ([0-9.e+]+)$", re.M
)


def _counted(platform: ReplicaPlatform, metric: str) -> float:
    total = 0.0
    for kind in ("inventory-worker", "orders-worker", "payments-worker"):
        for name in platform.names(kind):
            total += sum(
                float(value)
                for found, value in METRIC.findall(platform.metrics(name))
                if found == metric
            )
    return total


async def _outbox_rows(db: asyncpg.Connection) -> int:
    total = 0
    for schema in ("inventory", "orders", "payments"):
        total += await db.fetchval(f"SELECT count(*) FROM {schema}.outbox")  # noqa: S608
    return total


async def test_relays_sweepers_and_reconcilers_of_both_replicas_act_once(
    platform: ReplicaPlatform, stream: OrderStream, db: asyncpg.Connection
) -> None:
    # Settle what earlier tests left, then count only what this one causes.
    assert_books_balance(await books_of(platform))
    published_before = _counted(platform, "messaging_events_published_total")
    duplicates_before = _counted(platform, "messaging_events_duplicate_total")
    rows_before = await _outbox_rows(db)

    streams = _split(stream, STREAMS)
    await asyncio.gather(*(s.place(10, pause=0.2) for s in streams))
    for each in streams:
        assert set(await each.settled()) <= TERMINAL
    books = await books_of(platform)
    assert_books_balance(books)

    rows = await _outbox_rows(db) - rows_before
    published = _counted(platform, "messaging_events_published_total") - published_before
    duplicates = _counted(platform, "messaging_events_duplicate_total") - duplicates_before
    assert rows > 0
    assert published == rows, f"{rows} outbox rows, published {published} times by the relays"
    assert duplicates == 0, f"{duplicates} events reached a consumer twice"

    # Each reservation released, committed or returned once, whichever replica's sweeper or
    # consumer did it.
    repeated = await db.fetch(
        "SELECT reference, kind, count(*) FROM inventory.stock_movements"
        " WHERE kind <> 'adjustment' GROUP BY reference, kind, sku HAVING count(*) > 1"
    )
    assert not repeated, [dict(row) for row in repeated]
    # The payment reconcilers of both replicas: one payment per order, at most one charge.
    charged = await db.fetch(
        "SELECT order_id, count(*) FROM payments.payments GROUP BY order_id HAVING count(*) > 1"
    )
    assert not charged, [dict(row) for row in charged]


SHORT_TTL = {
    "INVENTORY_RESERVATION_TTL_SECONDS": "6",
    "INVENTORY_SWEEPER_INTERVAL_SECONDS": "0.5",
}
# Orders asks for payment until the reservation expires (the default margin is longer than
# the short TTL, and would cancel every order as soon as its stock is reserved).
ASK_UNTIL_EXPIRY = {"ORDERS_PAYMENT_REQUEST_MARGIN_SECONDS": "0"}
EXPIRED_ORDERS = 8
EXPIRY_WAIT_SECONDS = 90.0  # bound only: the TTL is 6 s


async def _restart(platform: ReplicaPlatform, name: str, env: dict[str, str]) -> None:
    process = platform.processes[name]
    process.env = env
    await asyncio.to_thread(process.stop)
    await asyncio.to_thread(platform.restart_replica, name)


async def test_both_inventory_sweepers_release_each_expired_reservation_once(
    platform: ReplicaPlatform, stream: OrderStream, db: asyncpg.Connection
) -> None:
    """Payments is away, so reservations outlive a short TTL; the sweepers of both inventory
    workers race for them, and each is released once."""
    sweepers = platform.names("inventory-worker")
    askers = platform.names("orders-worker")
    originals = {name: platform.processes[name].env for name in sweepers + askers}
    payments = platform.names("payments-worker")
    try:
        for name in sweepers:
            await _restart(platform, name, {**originals[name], **SHORT_TTL})
        for name in askers:
            await _restart(platform, name, {**originals[name], **ASK_UNTIL_EXPIRY})
        for name in payments:
            await asyncio.to_thread(platform.processes[name].stop)
        await stream.place(EXPIRED_ORDERS, pause=0.1)
        ids = [placed.order_id for placed in stream.placed]
        # Released by a sweeper (reason "expired"; the reservation then ends expired, or
        # cancelled once the orders saga has cancelled the order it learnt had expired).
        deadline = time.monotonic() + EXPIRY_WAIT_SECONDS
        released = 0
        while time.monotonic() < deadline:
            released = await db.fetchval(
                "SELECT count(DISTINCT reference) FROM inventory.stock_movements"
                " WHERE kind = 'release' AND reason = 'expired' AND reference = ANY($1::text[])",
                ids,
            )
            if released == len(ids):
                break
            await asyncio.sleep(0.5)
        assert released == len(ids), f"{released} of {len(ids)} reservations released"
    finally:
        for name in payments:
            if not platform.processes[name].running:
                await asyncio.to_thread(platform.restart_replica, name)
        for name in sweepers + askers:
            await _restart(platform, name, originals[name])

    releases = await db.fetch(
        "SELECT reference, sku, count(*) AS n FROM inventory.stock_movements"
        " WHERE kind = 'release' AND reference = ANY($1::text[]) GROUP BY reference, sku",
        ids,
    )
    assert len(releases) == EXPIRED_ORDERS, "every expired reservation was released"
    assert all(row["n"] == 1 for row in releases), [dict(row) for row in releases]
    # Payments back: the late payments are confirmed (stock taken again) or refunded.
    assert set(await stream.settled()) <= TERMINAL
    assert_books_balance(await books_of(platform))


# The provider refuses every call, once per request: a refund asked for is left owed.
PROVIDER_DOWN = {
    "PAYMENTS_FAKE_PROVIDER_FAILURE_RATE": "1.0",
    "PAYMENTS_PROVIDER_MAX_ATTEMPTS": "1",
    "PAYMENTS_REFUND_BACKOFF_BASE_SECONDS": "1",
}
# The provider back; both refund reconcilers look for owed refunds twice a second.
REFUNDS_RECONCILED = {
    "PAYMENTS_REFUND_BACKOFF_BASE_SECONDS": "1",
    "PAYMENTS_REFUND_RECONCILE_INTERVAL_SECONDS": "0.5",
}
OWED_REFUNDS = 6
REFUND_ATTEMPT = re.compile(r"^payments_refund_attempts_total\{([^}]*)\} ([0-9.e+]+)$", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


async def _restart_together(
    platform: ReplicaPlatform, names: list[str], env: dict[str, dict[str, str]]
) -> None:
    """Stop every replica of ``names``, then start them all at once with ``env``: their
    timers start together, so they race for the same rows."""
    for name in names:
        await asyncio.to_thread(platform.processes[name].stop)
        platform.processes[name].env = env[name]
    await asyncio.gather(*(asyncio.to_thread(platform.restart_replica, n) for n in names))


def _refunds_made(platform: ReplicaPlatform) -> Counter[str]:
    """Refunds the provider made, by who asked (request, reconciler), summed over the
    payments workers since they last started."""
    made: Counter[str] = Counter()
    for name in platform.names("payments-worker"):
        for labels, value in REFUND_ATTEMPT.findall(platform.metrics(name)):
            label = dict(LABEL.findall(labels))
            if label.get("outcome") == "refunded":
                made[label["source"]] += int(float(value))
    return made


async def test_both_refund_reconcilers_make_each_owed_refund_once(
    platform: ReplicaPlatform, stream: OrderStream, db: asyncpg.Connection
) -> None:
    """Paid orders are cancelled while the provider is down, so every refund is owed; the
    provider comes back and the refund reconcilers of both payments workers, started
    together, race for the owed refunds: each is made once, counted on the workers and at
    the provider."""
    workers = platform.names("payments-worker")
    originals = {name: platform.processes[name].env for name in workers}
    await stream.place(OWED_REFUNDS, pause=0.1)
    statuses = await stream.settled()
    paid = [p for p, status in zip(stream.placed, statuses, strict=True) if status == "confirmed"]
    assert paid
    try:
        await _restart_together(
            platform, workers, {n: {**originals[n], **PROVIDER_DOWN} for n in workers}
        )
        for placed in paid:
            reply = await stream.shop.client.post(
                f"/api/v1/orders/{placed.order_id}/cancel", headers=placed.shopper.headers
            )
            assert reply.status_code == 200, reply.text
        ids = [placed.order_id for placed in paid]
        async with asyncio.timeout(EXPIRY_WAIT_SECONDS):
            while True:
                owed = await db.fetchval(
                    "SELECT count(*) FROM payments.refunds r JOIN payments.payments p"
                    " ON p.id = r.payment_id WHERE r.status = 'owed'"
                    " AND p.order_id = ANY($1::uuid[])",
                    ids,
                )
                if owed == len(ids):
                    break
                await asyncio.sleep(0.5)
        await _restart_together(
            platform, workers, {n: {**originals[n], **REFUNDS_RECONCILED} for n in workers}
        )
        refunded = await asyncio.gather(
            *(stream.shop.wait_settled(p.shopper, p.order_id) for p in paid)
        )
        assert {order["status"] for order in refunded} == {"refunded"}
        made = _refunds_made(platform)
    finally:
        await _restart_together(platform, workers, originals)

    # Counted: one refund made per owed refund across both workers, most by a reconciler
    # (a refund asked for again by orders' sweeper may be made by its request instead).
    assert made["reconciler"] + made["request"] == len(paid), made
    assert made["reconciler"] > 0, made
    assert not await db.fetch(
        "SELECT charge_id, count(*) FROM payments.fake_provider_refunds"
        " GROUP BY charge_id HAVING count(*) > 1"
    )
    assert await db.fetchval(
        "SELECT count(*) FROM payments.refunds r JOIN payments.payments p"
        " ON p.id = r.payment_id WHERE r.status = 'refunded' AND p.order_id = ANY($1::uuid[])",
        ids,
    ) == len(ids)
    assert_books_balance(await books_of(platform))


# The provider back; both charge reconcilers look every half second for payments no request
# has touched for 3 s (more than a charge's retry pauses, as the settings require).
CHARGES_RECONCILED = {
    "PAYMENTS_RECONCILE_AFTER_SECONDS": "3",
    "PAYMENTS_RECONCILE_INTERVAL_SECONDS": "0.5",
}
LEFT_PENDING = 6
RECONCILED = "was left pending since"
REQUESTS_DLQ = "payments.requests.dlq"


async def test_both_charge_reconcilers_settle_each_payment_left_pending_once(
    platform: ReplicaPlatform, stream: OrderStream, db: asyncpg.Connection
) -> None:
    """The provider is down: every payment request fails past its deliveries and waits in
    the DLQ, its payment left pending (some charges made, their answers lost). The provider
    comes back and the charge reconcilers of both payments workers, started together, race
    for the pending payments: each is settled once (counted in both workers' logs), the
    orders settle, and the operator's replay of the DLQ changes nothing."""
    workers = platform.names("payments-worker")
    originals = {name: platform.processes[name].env for name in workers}
    try:
        await _restart_together(
            platform, workers, {n: {**originals[n], **PROVIDER_DOWN} for n in workers}
        )
        await stream.place(LEFT_PENDING, pause=0.1)
        ids = [placed.order_id for placed in stream.placed]
        async with asyncio.timeout(EXPIRY_WAIT_SECONDS):
            while True:
                depths = await asyncio.to_thread(broker.queue_depths, platform.namespace)
                if depths.get(f"{platform.namespace}.{REQUESTS_DLQ}", 0) >= LEFT_PENDING:
                    break
                await asyncio.sleep(0.5)
        pending = await db.fetchval(
            "SELECT count(*) FROM payments.payments"
            " WHERE status = 'pending' AND order_id = ANY($1::uuid[])",
            ids,
        )
        assert pending == LEFT_PENDING
        await _restart_together(
            platform, workers, {n: {**originals[n], **CHARGES_RECONCILED} for n in workers}
        )
        async with asyncio.timeout(EXPIRY_WAIT_SECONDS):
            while True:
                pending = await db.fetchval(
                    "SELECT count(*) FROM payments.payments"
                    " WHERE status = 'pending' AND order_id = ANY($1::uuid[])",
                    ids,
                )
                if not pending:
                    break
                await asyncio.sleep(0.5)
    finally:
        await _restart_together(platform, workers, originals)

    # Counted: every payment left pending reconciled by exactly one of the two workers.
    logs = "".join(platform.processes[name].log_text() for name in workers)
    reconciled = Counter(
        order_id
        for line in logs.splitlines()
        if RECONCILED in line
        for order_id in ids
        if order_id in line
    )
    assert reconciled == dict.fromkeys(ids, 1), reconciled
    replayed = await asyncio.to_thread(dlq, platform, "replay", "payments.requests")
    assert f"replayed {LEFT_PENDING} messages" in replayed
    assert set(await stream.settled()) <= TERMINAL
    await assert_each_order_placed_once(db, stream)
    assert_books_balance(await books_of(platform))


LOGINS_SECONDS = 180.0  # bound only


async def _login(client: httpx.AsyncClient, address: str) -> int:
    reply = await client.post(
        "/api/v1/auth/token",
        data={"username": f"nobody-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": address},
    )
    return reply.status_code


async def test_a_clients_login_limit_holds_across_both_gateways(
    platform: ReplicaPlatform,
) -> None:
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    first, second = (platform.url(name) for name in platform.names("gateway"))
    async with (
        # Each gateway checks the passwords behind the count one at a time.
        httpx.AsyncClient(base_url=first, timeout=LOGINS_SECONDS) as one,
        httpx.AsyncClient(base_url=second, timeout=LOGINS_SECONDS) as two,
    ):
        # At once, so that every attempt is counted within the same minute however long the
        # password checks behind the count take on a busy machine (a login sent after they
        # end may fall in the next window). Each gateway gets half the limit plus one, which
        # it would let through counting alone: counted across both, exactly two are refused.
        answers = await asyncio.gather(
            *(_login((one, two)[i % 2], address) for i in range(LOGIN_LIMIT + 2))
        )
        assert answers.count(429) == 2, "the limit is counted across both gateways"
        # Another address keeps its own budget.
        assert await _login(two, "198.51.100.251") != 429


async def test_a_token_from_one_gateway_passes_the_other_and_every_service_replica(
    platform: ReplicaPlatform, admin: Shopper
) -> None:
    first, second = (platform.url(name) for name in platform.names("gateway"))
    async with httpx.AsyncClient(timeout=30) as client:
        email = f"buyer-{uuid.uuid4().hex[:12]}@example.com"
        registered = await client.post(
            f"{first}/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        issued = await client.post(
            f"{first}/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
        assert issued.status_code == 200, issued.text
        bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        forged = {"Authorization": f"Bearer {issued.json()['access_token'][:-4]}AAAA"}

        me = await client.get(f"{second}/api/v1/auth/me", headers=bearer)
        assert me.status_code == 200, me.text
        assert me.json()["email"] == email
        assert (await client.get(f"{second}/api/v1/orders", headers=forged)).status_code == 401

        for service, path, headers in (
            ("orders", "/api/v1/orders", bearer),
            ("payments", "/api/v1/payments", bearer),
            ("inventory", "/api/v1/inventory/low-stock", admin.headers),
        ):
            for name in platform.names(service):
                ok = await client.get(f"{platform.url(name)}{path}", headers=headers)
                assert ok.status_code == 200, f"{name}: {ok.status_code} {ok.text}"
                refused = await client.get(f"{platform.url(name)}{path}", headers=forged)
                assert refused.status_code == 401, f"{name}: {refused.status_code}"
