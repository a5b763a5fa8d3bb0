"""Confirmations that reach inventory after the reservation expired (issue 21, item 1).

The reproduction: the payments worker is paused (SIGSTOP) so orders wait in
``awaiting_payment``; the inventory worker is paused too; payments resumes (SIGCONT), the
orders are paid and confirmed; the reservations' TTL passes; inventory resumes and its
sweeper releases the reservations before the confirmations are applied. A confirmation then
takes its stock again if it is still there, else the paid order is refunded
(``stock_commit_failed``): no unit is sold twice, every customer is served or refunded.

Inventory runs with a short TTL for this test only (its worker restarted with overrides,
then restored). The sweeper running before the backlog of confirmations is what happens
after a long pause; the test makes that order certain by holding the inventory inbox for a
moment (a table lock), so the consumer cannot apply anything before the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.conftest import ProductFactory
from tests.faults.conftest import assert_books_balance, books_of
from tests.harness.platform import Platform
from tests.harness.processes import ManagedProcess
from tests.harness.storefront import Shopper, Storefront

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TTL_SECONDS = 6
SHORT_TTL = {
    "INVENTORY_RESERVATION_TTL_SECONDS": str(TTL_SECONDS),
    "INVENTORY_SWEEPER_INTERVAL_SECONDS": "0.5",
}
# Orders asks for payment until the reservation expires (the default margin is longer than
# this test's whole TTL, and would cancel every order as soon as its stock is reserved).
ASK_UNTIL_EXPIRY = {"ORDERS_PAYMENT_REQUEST_MARGIN_SECONDS": "0"}
WAIT_SECONDS = 30.0  # bound on each wait; only stops a hung test


@contextlib.asynccontextmanager
async def restarted_with(
    platform: Platform, name: str, overrides: dict[str, str]
) -> AsyncIterator[None]:
    """The process ``name`` restarted with ``overrides``, then with its own settings again."""
    process = platform.processes[name]
    original = process.env
    process.env = {**original, **overrides}
    try:
        await asyncio.to_thread(platform.restart, name)
        yield
    finally:
        process.env = original
        await asyncio.to_thread(platform.restart, name)


class Pauses:
    """SIGSTOP and SIGCONT for platform processes; ``resume_all`` undoes whatever is left."""

    def __init__(self) -> None:
        self.paused: list[ManagedProcess] = []

    def pause(self, process: ManagedProcess) -> None:
        assert process.pid is not None
        assert process.running
        os.kill(process.pid, signal.SIGSTOP)
        self.paused.append(process)

    def resume(self, process: ManagedProcess) -> None:
        if process in self.paused and process.pid is not None:
            os.kill(process.pid, signal.SIGCONT)
            self.paused.remove(process)

    def resume_all(self) -> None:
        for process in list(self.paused):
            self.resume(process)


async def wait_status(shop: Storefront, shopper: Shopper, order_id: str, status: str) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if (await shop.order(shopper, order_id)).json()["status"] == status:
                return
            await asyncio.sleep(0.1)


async def wait_creation_published(db: asyncpg.Connection, order_id: str) -> None:
    """Until orders' relay has handed the order's creation to the broker: it is queued for
    inventory ahead of anything published after."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if await db.fetchval(
                "SELECT sent_at IS NOT NULL FROM orders.outbox "
                "WHERE event_type = 'orders.order_created' AND body->'data'->>'order_id' = $1",
                order_id,
            ):
                return
            await asyncio.sleep(0.1)


async def wait_reservations(db: asyncpg.Connection, order_ids: list[str], status: str) -> None:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            statuses = await db.fetch(
                "SELECT status FROM inventory.reservations WHERE order_id = ANY($1::uuid[])",
                order_ids,
            )
            if len(statuses) == len(order_ids) and {row["status"] for row in statuses} == {status}:
                return
            await asyncio.sleep(0.1)


async def placed(shop: Storefront, shopper: Shopper, items: dict[str, int]) -> str:
    reply = await shop.place_order(shopper, items)
    assert reply.status_code == 202, reply.text
    order_id: str = reply.json()["id"]
    return order_id


def history(order: dict[str, Any]) -> list[tuple[str, str]]:
    return [(entry["status"], entry["reason"]) for entry in order["status_history"]]


async def test_confirmations_meeting_expired_reservations_serve_or_refund_and_never_oversell(
    platform: Platform,
    shop: Storefront,
    admin: Shopper,
    product: ProductFactory,
    db: asyncpg.Connection,
) -> None:
    scarce, spare = await product(stock=1), await product(stock=2)
    alice, bob, carol = [await shop.new_customer() for _ in range(3)]
    payments = platform.processes["payments-worker"]
    inventory = platform.processes["inventory-worker"]
    pauses = Pauses()
    async with (
        restarted_with(platform, "inventory-worker", SHORT_TTL),
        restarted_with(platform, "orders-worker", ASK_UNTIL_EXPIRY),
    ):
        try:
            pauses.pause(payments)
            # Alice reserves the last unit of one product, Carol one of two of another.
            late_alice = await placed(shop, alice, {scarce: 1})
            late_carol = await placed(shop, carol, {spare: 1})
            for shopper, order_id in ((alice, late_alice), (carol, late_carol)):
                await wait_status(shop, shopper, order_id, "awaiting_payment")

            pauses.pause(inventory)
            # Bob asks for the same last unit; inventory will see his order before the
            # confirmations of the others.
            newcomer = await placed(shop, bob, {scarce: 1})
            await wait_creation_published(db, newcomer)
            pauses.resume(payments)
            for shopper, order_id in ((alice, late_alice), (carol, late_carol)):
                await wait_status(shop, shopper, order_id, "confirmed")

            expires_at = await db.fetchval(
                "SELECT max(expires_at) FROM inventory.reservations "
                "WHERE order_id = ANY($1::uuid[])",
                [late_alice, late_carol],
            )
            await asyncio.sleep(max(0.0, expires_at.timestamp() - time.time()) + 0.5)

            async with db.transaction():
                await db.execute("LOCK TABLE inventory.processed_events IN SHARE MODE")
                pauses.resume(inventory)
                await wait_reservations(db, [late_alice, late_carol], "expired")
            # The backlog is applied now: Bob's order, then the two confirmations. Once the
            # platform is quiet again, every saga has run its course.
            await books_of(platform)
            settled = {
                "alice": (await shop.order(alice, late_alice)).json(),
                "bob": (await shop.order(bob, newcomer)).json(),
                "carol": (await shop.order(carol, late_carol)).json(),
            }
        finally:
            pauses.resume_all()

    # Alice paid for a unit that went to Bob while her confirmation waited: refunded.
    assert settled["alice"]["status"] == "refunded"
    assert ("refund_pending", "stock_unavailable") in history(settled["alice"])
    assert settled["bob"]["status"] == "confirmed"
    # Carol's unit was still there: taken again, she is served.
    assert settled["carol"]["status"] == "confirmed"
    scarce_stock, spare_stock = await shop.stock(admin, scarce), await shop.stock(admin, spare)
    assert (scarce_stock["on_hand"], scarce_stock["reserved"]) == (0, 0)
    assert (spare_stock["on_hand"], spare_stock["reserved"]) == (1, 0)
    assert_books_balance(await books_of(platform))
