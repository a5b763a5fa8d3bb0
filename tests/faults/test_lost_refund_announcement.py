"""A refund whose announcement is lost on the way to orders (issue 21, the counterpart of
item 3 for refunds).

A charge lands after its order was cancelled, so orders asks for the refund (the order is
``refund_pending``); payments refunds it and announces ``payments.payment_refunded``, but
orders cannot apply that announcement (a fault only this order meets, in the orders
database) until it is dead-lettered in the ``orders.saga`` queue. Once the fault is gone,
nobody replays the DLQ: orders' sweeper asks for the refund again, payments answers with the
refund it made (never refunding twice), and the order ends ``refunded``. The dead letter,
replayed last by an operator, changes nothing. The books balance.

The orders worker runs with a short ``ORDERS_REFUND_PENDING_TIMEOUT_SECONDS`` for this test
only (restarted with the override, then restored); the late charge is made by pausing the
payments worker (SIGSTOP) while the order is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import ProductFactory
from tests.faults.conftest import assert_books_balance, books_of
from tests.faults.test_confirmation_after_expiry import Pauses, history, placed, wait_status
from tests.harness import broker
from tests.harness.platform import ROOT, Platform
from tests.harness.storefront import Shopper, Storefront

pytestmark = [pytest.mark.faults, pytest.mark.slow]

QUEUE = "orders.saga"
REFUND_PENDING_TIMEOUT_SECONDS = 8
WAIT_SECONDS = 60.0  # bound on each wait; only stops a hung test

# A fault only this order meets: orders cannot record its refund (the move to refunded fails
# inside the consumer's transaction), so every payment_refunded of it is dead-lettered.
POISON = """
CREATE FUNCTION orders.poison_{tag}() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'poisoned refund of order %', NEW.id; END $$;
CREATE TRIGGER poison_{tag} BEFORE UPDATE ON orders.orders
FOR EACH ROW WHEN (NEW.id = '{order_id}'::uuid AND NEW.status = 'refunded')
EXECUTE FUNCTION orders.poison_{tag}();
"""
CURE = """
DROP TRIGGER IF EXISTS poison_{tag} ON orders.orders;
DROP FUNCTION IF EXISTS orders.poison_{tag}();
"""


@contextlib.asynccontextmanager
async def orders_worker_with(platform: Platform, overrides: dict[str, str]) -> AsyncIterator[None]:
    """The orders worker restarted with ``overrides``, then with its own settings again."""
    process = platform.processes["orders-worker"]
    original = process.env
    process.env = {**original, **overrides}
    try:
        await asyncio.to_thread(platform.restart, "orders-worker")
        yield
    finally:
        process.env = original
        await asyncio.to_thread(platform.restart, "orders-worker")


def dlq(platform: Platform, *args: str) -> str:
    """``python -m shared.messaging dlq ...`` as an operator runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "shared.messaging", "dlq", *args],
        env=platform.env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


async def dead_letters(platform: Platform) -> int:
    depths = await asyncio.to_thread(broker.queue_depths, platform.namespace)
    return depths.get(f"{platform.namespace}.{QUEUE}.dlq", 0)


async def events_of(db: asyncpg.Connection, order_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT event_type FROM orders.outbox WHERE body->'data'->>'order_id' = $1 "
        "ORDER BY created_at, id",
        order_id,
    )
    return [row["event_type"] for row in rows]


async def test_an_order_whose_refund_announcement_was_dead_lettered_still_ends_refunded(
    platform: Platform,
    shop: Storefront,
    admin: Shopper,
    customer: Shopper,
    product: ProductFactory,
    db: asyncpg.Connection,
) -> None:
    sku = await product(stock=2)
    payments = platform.processes["payments-worker"]
    pauses = Pauses()
    overrides = {"ORDERS_REFUND_PENDING_TIMEOUT_SECONDS": str(REFUND_PENDING_TIMEOUT_SECONDS)}
    async with orders_worker_with(platform, overrides):
        try:
            # A charge that lands after the customer cancelled: the order asks for a refund.
            pauses.pause(payments)
            order_id = await placed(shop, customer, {sku: 1})
            await wait_status(shop, customer, order_id, "awaiting_payment")
            reply = await shop.client.post(
                f"/api/v1/orders/{order_id}/cancel", headers=customer.headers
            )
            assert reply.json()["status"] == "cancelled", reply.text
            tag = order_id.replace("-", "_")
            await db.execute(POISON.format(tag=tag, order_id=order_id))
            try:
                pauses.resume(payments)
                await wait_status(shop, customer, order_id, "refund_pending")
                # Payments refunds and announces it; orders cannot take the announcement.
                async with asyncio.timeout(WAIT_SECONDS):
                    while True:  # polling: the broker offers no event to wait on
                        if await dead_letters(platform):
                            break
                        await asyncio.sleep(0.2)
                refunded = await db.fetchval(
                    "SELECT status FROM payments.payments WHERE order_id = $1::uuid", order_id
                )
                assert refunded == "refunded"
                assert (await shop.order(customer, order_id)).json()["status"] == ("refund_pending")
            finally:
                await db.execute(CURE.format(tag=tag))

            # No replay: the sweeper asks again, payments announces the refund again.
            order = await shop.wait_settled(customer, order_id, seconds=WAIT_SECONDS)
        finally:
            pauses.resume_all()

    assert order["status"] == "refunded"
    assert [status for status, _ in history(order)].count("refunded") == 1
    kinds = await events_of(db, order_id)
    assert kinds.count("orders.refund_requested") >= 2  # asked again by the sweeper
    # The reservation was released once, at the cancellation; the refund returns nothing.
    assert kinds.count("orders.order_cancelled") == 1
    payment = await db.fetchrow(
        "SELECT id, amount, refunded_amount FROM payments.payments WHERE order_id = $1::uuid",
        order_id,
    )
    assert payment["refunded_amount"] == payment["amount"]
    refunds = await db.fetchval(
        "SELECT count(*) FROM payments.fake_provider_refunds WHERE idempotency_key = $1",
        str(payment["id"]),
    )
    assert refunds == 1

    # The operator's replay of the dead letter, late: a repeated announcement changes nothing.
    replayed = await asyncio.to_thread(dlq, platform, "replay", QUEUE)
    assert "replayed" in replayed
    assert_books_balance(await books_of(platform))
    assert (await shop.order(customer, order_id)).json() == order
    assert (await events_of(db, order_id)).count("orders.order_cancelled") == 1
    assert (await shop.stock(admin, sku, on_hand=2))["on_hand"] == 2
