"""A poison event: inventory cannot handle one order's creation until an operator fixes the
cause. It lands in the DLQ after its deliveries, the rest of the shop flows on, and once the
cause is fixed the operator's replay command completes the order."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest

from tests.conftest import ProductFactory
from tests.faults.conftest import assert_books_balance, books_of
from tests.harness import broker
from tests.harness.platform import ROOT, Platform
from tests.harness.storefront import Shopper, Storefront

pytestmark = [pytest.mark.faults, pytest.mark.slow]

QUEUE = "inventory.reservations"
DEAD_LETTER_SECONDS = 90.0

# A fault only this sku meets: reserving it fails inside the consumer's transaction.
POISON = """
CREATE FUNCTION inventory.poison_{tag}() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'poisoned sku %', NEW.sku; END $$;
CREATE TRIGGER poison_{tag} BEFORE INSERT ON inventory.reservation_lines
FOR EACH ROW WHEN (NEW.sku = '{sku}') EXECUTE FUNCTION inventory.poison_{tag}();
"""
CURE = """
DROP TRIGGER IF EXISTS poison_{tag} ON inventory.reservation_lines;
DROP FUNCTION IF EXISTS inventory.poison_{tag}();
"""


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


async def test_a_poison_event_waits_in_the_dlq_and_a_replay_after_the_fix_completes_the_order(
    platform: Platform,
    shop: Storefront,
    admin: Shopper,
    customer: Shopper,
    product: ProductFactory,
    db: asyncpg.Connection,
) -> None:
    poisoned, healthy = await product(stock=3), await product(stock=3)
    tag = poisoned.replace("-", "_").lower()
    await db.execute(POISON.format(tag=tag, sku=poisoned))
    try:
        stuck = (await shop.place_order(customer, {poisoned: 1})).json()["id"]
        async with asyncio.timeout(DEAD_LETTER_SECONDS):
            while True:
                if await dead_letters(platform):
                    break
                await asyncio.sleep(0.5)
        assert "reason=delivery_limit" in await asyncio.to_thread(dlq, platform, "show", QUEUE)

        flowing = await shop.buy(customer, {healthy: 1})  # the rest of the shop flows on
        assert flowing["status"] == "confirmed"
        assert (await shop.order(customer, stuck)).json()["status"] == "pending"
    finally:
        await db.execute(CURE.format(tag=tag))

    replayed = await asyncio.to_thread(dlq, platform, "replay", QUEUE)
    assert "replayed 1 messages" in replayed
    order = await shop.wait_settled(customer, stuck)
    assert order["status"] == "confirmed"
    assert (await shop.stock(admin, poisoned, on_hand=2))["on_hand"] == 2
    assert_books_balance(await books_of(platform))  # the DLQ drained too
