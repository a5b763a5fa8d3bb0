"""Queries of POST /orders and of the Idempotency-Key records; no rules, no transactions.

Placing an order is the app's hot path: the advisory lock, the record read, and an ORM
flush of the order, its lines, its first history entry and the record would be six
statements and several times the CPU (bench/CHANGES.md). Here they are two fixed statements
on a connection outside any transaction, each atomic by itself: the key's record with the
prices, then everything a new order writes, its outbox rows included (one statement for a
replay).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import asyncpg
import orjson
from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from orders.catalog.repository import Price
from orders.events import outbox
from orders.order.models import IdempotencyRecord, PricedLine
from orders.saga import HistoryEntry, OrderState
from shared.messaging import Envelope
from shared.tracing.messaging import current_trace_context


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer to one user's Idempotency-Key, as its record holds it."""

    request_hash: str
    order_id: uuid.UUID
    response_status: int
    response_body: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class KeyAndPrices:
    """The key's record as read (None if it holds none), and the replica's prices of the
    skus asked for (by sku; an sku it does not hold is absent)."""

    record: StoredAnswer | None
    prices: dict[str, Price]


# One round trip, committed alone: the key's record and the prices of the order's skus. A
# request with this key that commits after this read is caught by ``INSERT_ORDER``, which
# checks the key's row itself.
KEY_AND_PRICES = """
SELECT k.request_hash, k.order_id, k.response_status, k.response_body, k.created_at,
       ARRAY(
           SELECT ROW(p.sku, p.name, p.price_amount, p.currency, p.active)
           FROM orders.catalog_prices AS p
           WHERE p.sku = ANY($3::text[])
       ) AS prices
FROM (SELECT) AS one
LEFT JOIN orders.idempotency_keys AS k ON k.user_id = $1::uuid AND k.key = $2::text
"""

IDEMPOTENCY_RECORD = """
SELECT request_hash, order_id, response_status, response_body, created_at
FROM orders.idempotency_keys
WHERE user_id = $1::uuid AND key = $2::text
"""


def _stored_answer(row: Any) -> StoredAnswer:
    return StoredAnswer(
        request_hash=row["request_hash"],
        order_id=row["order_id"],
        response_status=row["response_status"],
        response_body=row["response_body"],  # jsonb: decoded by the dialect's codec
        created_at=row["created_at"],
    )


async def read_key_and_prices(
    db: asyncpg.Connection, *, user_id: uuid.UUID, key: str, skus: Iterable[str]
) -> KeyAndPrices:
    """One user's key's record (None if it holds none) and the prices of ``skus``."""
    row = await db.fetchrow(KEY_AND_PRICES, user_id, key, sorted(set(skus)))
    prices = {
        sku: Price(sku, name, amount, currency, active)
        for sku, name, amount, currency, active in row["prices"]
    }
    record = _stored_answer(row) if row["request_hash"] is not None else None
    return KeyAndPrices(record=record, prices=prices)


async def get_idempotency_record(
    db: asyncpg.Connection, *, user_id: uuid.UUID, key: str
) -> StoredAnswer | None:
    """The key's record as committed now (a statement of its own: a fresh snapshot)."""
    row = await db.fetchrow(IDEMPOTENCY_RECORD, user_id, key)
    return _stored_answer(row) if row is not None else None


# One statement, committed alone (atomic by itself: no BEGIN and COMMIT around it), for
# everything a new order writes. First the transaction-scoped lock of the user's key, taken
# without waiting: held by a concurrent request with this key, it is not acquired and
# nothing is written (that request is still in flight: 409). Then the key's record decides:
# a new key, or one whose record expired (replaced in place), yields a row and the order,
# lines, first history entry and the outbox rows are inserted from it (the order row with
# the request's trace context, which the sweeper's events continue); a live record
# (a request with this key committed after our read) yields none and nothing is written.
# The CTE ``order_created`` is this service's outbox write for a placement (the one not made
# by ``outbox.add_many``: see ``orders.order.recording``), built by the shared ``Outbox``.
# The foreign keys are checked at the end of the statement, when the order row is there.
# The relays are woken at commit, when the order was placed.
INSERT_ORDER = f"""
WITH key_lock AS (
    SELECT pg_try_advisory_xact_lock(hashtextextended($27::text, 0)) AS acquired
),
claimed AS (
    INSERT INTO orders.idempotency_keys AS k
        (user_id, key, request_hash, order_id, response_status, response_body, created_at)
    SELECT $1::uuid, $2::text, $3::text, $4::uuid, $5::integer, $6::jsonb, $7::timestamptz
    FROM key_lock WHERE key_lock.acquired
    ON CONFLICT (user_id, key) DO UPDATE
        SET request_hash = EXCLUDED.request_hash, order_id = EXCLUDED.order_id,
            response_status = EXCLUDED.response_status,
            response_body = EXCLUDED.response_body, created_at = EXCLUDED.created_at
        WHERE k.created_at < $8::timestamptz
    RETURNING k.order_id
),
placed AS (
    INSERT INTO orders.orders
        (id, user_id, status, total_amount, currency, shipping_address, payment_token,
         payment_requests, sweep_due_at, created_at, updated_at, trace_context)
    SELECT order_id, $1::uuid, $9::text, $10::bigint, $11::text, $12::jsonb, $13::text,
           $14::integer, $15::timestamptz, $7::timestamptz, $7::timestamptz, $28::jsonb
    FROM claimed
    RETURNING id
),
lines AS (
    INSERT INTO orders.order_lines (order_id, sku, position, name, quantity, unit_price_amount)
    SELECT placed.id, l.sku, l.position, l.name, l.quantity, l.unit_price_amount
    FROM placed,
         unnest($16::text[], $17::integer[], $18::text[], $19::integer[], $20::bigint[])
             AS l(sku, position, name, quantity, unit_price_amount)
),
history AS (
    INSERT INTO orders.order_status_history (order_id, status, reason, at)
    SELECT placed.id, $9::text, $21::text, $7::timestamptz FROM placed
),
order_created AS (
    {outbox.insert_sql(first_parameter=22)}
    WHERE EXISTS (SELECT 1 FROM placed)
)
SELECT (SELECT acquired FROM key_lock) AS acquired,
       (SELECT count(*) FROM placed) AS placed,
       (SELECT pg_notify($26::text, '') FROM placed) AS notified
"""  # noqa: S608 (the outbox's own insert, no input)


class Placement(Enum):
    """What ``insert_order`` did."""

    PLACED = "placed"
    KEY_IN_FLIGHT = "key in flight"  # a concurrent request holds the key's lock
    KEY_TAKEN = "key taken"  # the key holds a live record: a request committed meanwhile


async def insert_order(
    db: asyncpg.Connection,
    *,
    order: OrderState,
    lines: Sequence[PricedLine],
    shipping_address: dict[str, Any],
    placed_as: HistoryEntry,
    key: str,
    request_hash: str,
    response_status: int,
    response_body: dict[str, Any],
    replaces_records_before: datetime,
    events: Sequence[Envelope],
) -> Placement:
    """Insert ``order`` (its lines, its first history entry) with the key's record, and
    write ``events`` to the outbox, in one statement committed alone; nothing is written
    unless it answers ``PLACED``."""
    row = await db.fetchrow(
        INSERT_ORDER,
        order.user_id,
        key,
        request_hash,
        order.id,
        response_status,
        orjson.dumps(response_body).decode(),
        placed_as.at,
        replaces_records_before,
        order.status.value,
        order.total.amount,
        order.total.currency,
        orjson.dumps(shipping_address).decode(),
        order.payment_token,
        order.payment_requests,
        order.sweep_due_at,
        [line.sku for line in lines],
        [line.position for line in lines],
        [line.name for line in lines],
        [line.quantity for line in lines],
        [line.unit_price_amount for line in lines],
        placed_as.reason,
        *outbox.parameters(events),
        f"orders.idempotency:{order.user_id}:{key}",
        current_trace_context(),  # the sweeper's events continue the order's trace
    )
    if not row["acquired"]:
        return Placement.KEY_IN_FLIGHT
    return Placement.PLACED if row["placed"] else Placement.KEY_TAKEN


async def delete_expired_idempotency_records(
    *, session: AsyncSession, older_than: datetime, limit: int
) -> int:
    doomed = (
        select(IdempotencyRecord.user_id, IdempotencyRecord.key)
        .where(IdempotencyRecord.created_at < older_than)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(IdempotencyRecord).where(
            tuple_(IdempotencyRecord.user_id, IdempotencyRecord.key).in_(doomed)
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
