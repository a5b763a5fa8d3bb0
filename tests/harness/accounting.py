"""The books of the platform, read as the Postgres superuser, and the rules they must keep.

After any journey or fault, once the platform is quiet:
- every order has settled (none pending, awaiting payment or refund pending);
- for every sku: available + reserved + sold = received, where received is what the ledger
  says came in (initial stock and adjustments), sold what confirmed, shipped and delivered
  orders hold, and nothing is reserved any more;
- the ledger sums to the stock rows;
- every paid order holds exactly one successful payment of its total, a refunded one a full
  refund; the provider charged each order at most once, and what it kept equals what
  confirmed orders cost;
- every outbox is drained, and every queue of the namespace (DLQs included) is empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from tests.harness import broker
from tests.harness.storefront import IN_FLIGHT

PAID = ("confirmed", "shipped", "delivered")
QUIET_SECONDS = 120.0


@dataclass(frozen=True)
class Books:
    orders_in_flight: int
    stock_mismatches: list[str]
    payment_mismatches: list[str]
    duplicate_charges: list[str]
    unsent_events: int
    queued_messages: dict[str, int]

    def problems(self) -> list[str]:
        found = [*self.stock_mismatches, *self.payment_mismatches, *self.duplicate_charges]
        if self.orders_in_flight:
            found.append(f"{self.orders_in_flight} orders still in flight")
        if self.unsent_events:
            found.append(f"{self.unsent_events} outbox events unsent")
        found += [f"{queue}: {count} messages" for queue, count in self.queued_messages.items()]
        return found


async def _orders_in_flight(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM orders.orders WHERE status = ANY($1::text[])", list(IN_FLIGHT)
    )
    return count


async def _unsent(db: asyncpg.Connection) -> int:
    total = 0
    for schema in ("inventory", "orders", "payments"):
        total += await db.fetchval(f"SELECT count(*) FROM {schema}.outbox WHERE sent_at IS NULL")  # noqa: S608
    return total


STOCK_SQL = """
WITH received AS (
    SELECT sku, sum(on_hand_delta) AS quantity
    FROM inventory.stock_movements WHERE kind = 'adjustment' GROUP BY sku
), ledger AS (
    SELECT sku, sum(on_hand_delta) AS on_hand, sum(reserved_delta) AS reserved
    FROM inventory.stock_movements GROUP BY sku
), sold AS (
    SELECT l.sku, sum(l.quantity) AS quantity
    FROM orders.order_lines l JOIN orders.orders o ON o.id = l.order_id
    WHERE o.status = ANY($1::text[]) GROUP BY l.sku
)
SELECT s.sku, s.on_hand, s.reserved,
       coalesce(r.quantity, 0) AS received, coalesce(sold.quantity, 0) AS sold,
       coalesce(g.on_hand, 0) AS ledger_on_hand, coalesce(g.reserved, 0) AS ledger_reserved
FROM inventory.stock_items s
LEFT JOIN received r ON r.sku = s.sku
LEFT JOIN ledger g ON g.sku = s.sku
LEFT JOIN sold ON sold.sku = s.sku
"""


async def _stock_mismatches(db: asyncpg.Connection) -> list[str]:
    found = []
    for row in await db.fetch(STOCK_SQL, list(PAID)):
        available = row["on_hand"] - row["reserved"]
        if available + row["reserved"] + row["sold"] != row["received"]:
            found.append(
                f"{row['sku']}: available {available} + reserved {row['reserved']} + sold "
                f"{row['sold']} != received {row['received']}"
            )
        if row["reserved"] != 0:
            found.append(f"{row['sku']}: {row['reserved']} still reserved")
        if (row["on_hand"], row["reserved"]) != (row["ledger_on_hand"], row["ledger_reserved"]):
            found.append(f"{row['sku']}: stock row disagrees with its ledger")
    return found


PAYMENTS_SQL = """
SELECT o.id, o.status, o.total_amount,
       p.status AS payment_status, p.amount, p.refunded_amount,
       (SELECT count(*) FROM payments.payments q WHERE q.order_id = o.id) AS payments
FROM orders.orders o LEFT JOIN payments.payments p ON p.order_id = o.id
"""


async def _payment_mismatches(db: asyncpg.Connection) -> list[str]:
    found = []
    for row in await db.fetch(PAYMENTS_SQL):
        order = f"order {row['id']} ({row['status']})"
        if row["payments"] > 1:
            found.append(f"{order}: {row['payments']} payments")
        if row["status"] in PAID and (
            row["payment_status"] != "succeeded" or row["amount"] != row["total_amount"]
        ):
            found.append(f"{order}: payment {row['payment_status']} of {row['amount']}")
        if row["status"] == "refunded" and (
            row["payment_status"] != "refunded" or row["refunded_amount"] != row["amount"]
        ):
            found.append(f"{order}: refund {row['payment_status']} of {row['refunded_amount']}")
        if row["status"] not in (*PAID, "refunded") and row["payment_status"] == "succeeded":
            found.append(f"{order}: a charge was kept")
    return found


CHARGES_SQL = """
SELECT idempotency_key, count(*) AS charges FROM payments.fake_provider_charges
WHERE outcome = 'succeeded' GROUP BY idempotency_key HAVING count(*) > 1
"""
KEPT_SQL = """
SELECT
  (SELECT coalesce(sum(amount), 0) FROM payments.fake_provider_charges
    WHERE outcome = 'succeeded')
  - (SELECT coalesce(sum(amount), 0) FROM payments.fake_provider_refunds) AS kept,
  (SELECT coalesce(sum(total_amount), 0) FROM orders.orders
    WHERE status = ANY($1::text[])) AS owed
"""


async def _duplicate_charges(db: asyncpg.Connection) -> list[str]:
    found = [
        f"provider charged {row['idempotency_key']} {row['charges']} times"
        for row in await db.fetch(CHARGES_SQL)
    ]
    money = await db.fetchrow(KEPT_SQL, list(PAID))
    if money["kept"] != money["owed"]:
        found.append(f"provider kept {money['kept']}, confirmed orders cost {money['owed']}")
    return found


async def read_books(db: asyncpg.Connection, namespace: str) -> Books:
    depths = await asyncio.to_thread(broker.queue_depths, namespace)
    return Books(
        orders_in_flight=await _orders_in_flight(db),
        stock_mismatches=await _stock_mismatches(db),
        payment_mismatches=await _payment_mismatches(db),
        duplicate_charges=await _duplicate_charges(db),
        unsent_events=await _unsent(db),
        queued_messages={queue: count for queue, count in depths.items() if count},
    )


async def settled_books(
    connect: Callable[[], Awaitable[asyncpg.Connection]], namespace: str
) -> Books:
    """Wait until no order is in flight, every outbox is drained and every queue is empty,
    then read the books. The bound only stops a hung test: the books are returned either way
    and their ``problems()`` say what is wrong."""
    db = await connect()
    try:
        books = await read_books(db, namespace)
        async with asyncio.timeout(QUIET_SECONDS):
            while books.orders_in_flight or books.unsent_events or books.queued_messages:
                await asyncio.sleep(0.5)
                books = await read_books(db, namespace)
        return books
    except TimeoutError:
        return await read_books(db, namespace)
    finally:
        await db.close()
