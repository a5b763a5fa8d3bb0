"""Queries on orders and idempotency records; no business rules, no transactions."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import asyncpg
import orjson
from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from orders.catalog.repository import Price
from orders.events import outbox
from orders.order.models import IdempotencyRecord, NewOrder, Order
from orders.saga import STOCK_UNAVAILABLE, OrderStatus
from shared.db import driver_connection
from shared.messaging import Envelope


async def get(
    *, session: AsyncSession, order_id: uuid.UUID, for_update: bool = False
) -> Order | None:
    # The order with its lines and history in one round trip (joined, not the mapping's
    # two follow-up selects): every saga step and every read loads all three.
    statement = (
        select(Order)
        .where(Order.id == order_id)
        .options(joinedload(Order.lines), joinedload(Order.history))
    )
    if for_update:
        # Every transition locks its order first: two events for one order apply one after
        # the other, each seeing the status the previous one left. Only the order row: the
        # joined rows are on the nullable side of outer joins, which cannot be locked.
        statement = statement.with_for_update(of=Order)
    result = await session.scalars(statement.execution_options(populate_existing=True))
    order: Order | None = result.unique().first()
    return order


# -- saga reactions: fixed SQL on the driver connection ---------------------------------------
#
# A reaction is the worker's hot path: through the ORM, the joined load of the order (with
# its lines and history) and the flush of its changes would each cost several times the CPU
# of a fixed statement (bench/CHANGES.md). These two fixed statements carry the same reads
# and writes for every order of a consumer's batch, prepared once per connection: two round
# trips for the batch, not two per event.


@dataclass(frozen=True)
class LockedOrder:
    """What a saga reaction needs of an order, read under the order's row lock."""

    id: uuid.UUID
    user_id: uuid.UUID
    status: OrderStatus
    total_amount: int
    currency: str
    payment_token: str | None
    payment_id: uuid.UUID | None
    payment_requests: int
    sweep_due_at: datetime | None
    reservation_expires_at: datetime | None  # inventory's deadline, from stock_reserved
    refund_amount: int | None  # what the refund asks for, from the move to refund_pending
    refund_currency: str | None
    skus: list[str]  # the lines, by position
    quantities: list[int]
    stock_committed: bool  # ``saga.stock_committed`` of the history


# One round trip: the order rows, locked (so two events for one order apply one after the
# other, each seeing the status the previous one left), with their lines as two arrays and
# whether inventory holds each one's stock as sold (``saga.stock_committed``: confirmed, and
# no commit failure reported) instead of the whole history. Rows are locked in id order,
# so two workers locking overlapping batches cannot deadlock. Only the order rows are
# locked, as by the ORM load this replaces; lines never change after the order is placed.
LOCK_FOR_REACTIONS = """
SELECT o.id, o.user_id, o.status, o.total_amount, o.currency, o.payment_token, o.payment_id,
       o.payment_requests, o.sweep_due_at, o.reservation_expires_at, o.refund_amount,
       o.refund_currency,
       ARRAY(SELECT l.sku FROM orders.order_lines AS l
             WHERE l.order_id = o.id ORDER BY l.position) AS skus,
       ARRAY(SELECT l.quantity FROM orders.order_lines AS l
             WHERE l.order_id = o.id ORDER BY l.position) AS quantities,
       -- A scalar subquery, not EXISTS: for several orders the planner may turn an EXISTS
       -- into one hashed scan of the whole history, whose cost grows with the table.
       (SELECT coalesce(bool_or(h.status = $2::text), false)
               AND NOT coalesce(bool_or(h.status = $3::text AND h.reason = $4::text), false)
        FROM orders.order_status_history AS h
        WHERE h.order_id = o.id) AS stock_committed
FROM orders.orders AS o
WHERE o.id = ANY($1::uuid[])
ORDER BY o.id
FOR UPDATE OF o
"""


async def lock_for_reactions(
    *, session: AsyncSession, order_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, LockedOrder]:
    """The orders under their row locks, for the rest of the transaction, by id; an
    unknown id is absent."""
    db = await driver_connection(session)
    rows = await db.fetch(
        LOCK_FOR_REACTIONS,
        list(order_ids),
        OrderStatus.CONFIRMED.value,
        OrderStatus.REFUND_PENDING.value,
        STOCK_UNAVAILABLE,
    )
    return {
        row["id"]: LockedOrder(
            id=row["id"],
            user_id=row["user_id"],
            status=OrderStatus(row["status"]),
            total_amount=row["total_amount"],
            currency=row["currency"],
            payment_token=row["payment_token"],
            payment_id=row["payment_id"],
            payment_requests=row["payment_requests"],
            sweep_due_at=row["sweep_due_at"],
            reservation_expires_at=row["reservation_expires_at"],
            refund_amount=row["refund_amount"],
            refund_currency=row["refund_currency"],
            skus=list(row["skus"]),
            quantities=list(row["quantities"]),
            stock_committed=row["stock_committed"],
        )
        for row in rows
    }


@dataclass(frozen=True)
class Move:
    """One transition: the order as it left it, and its history entry's reason and time."""

    order: LockedOrder
    reason: str
    at: datetime


# One round trip: every order's final state and every history entry, in the order the
# transitions happened (entries are read back by id), the insert fed by the update's
# RETURNING (a data-modifying CTE), so an entry exists exactly when its order row moved.
APPLY_MOVES = """
WITH moved AS (
    UPDATE orders.orders AS o
    SET status = n.status, payment_id = n.payment_id, payment_requests = n.payment_requests,
        sweep_due_at = n.sweep_due_at, payment_token = n.payment_token,
        reservation_expires_at = n.reservation_expires_at, refund_amount = n.refund_amount,
        refund_currency = n.refund_currency, updated_at = n.at
    FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::integer[], $5::timestamptz[],
                $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bigint[], $10::text[])
        AS n(id, status, payment_id, payment_requests, sweep_due_at, payment_token, at,
             reservation_expires_at, refund_amount, refund_currency)
    WHERE o.id = n.id
    RETURNING o.id
)
INSERT INTO orders.order_status_history (order_id, status, reason, at)
SELECT h.order_id, h.status, h.reason, h.at
FROM unnest($11::uuid[], $12::text[], $13::text[], $14::timestamptz[]) WITH ORDINALITY
    AS h(order_id, status, reason, at, position)
WHERE h.order_id IN (SELECT id FROM moved)
ORDER BY h.position
"""


async def apply_moves(*, session: AsyncSession, moves: Sequence[Move]) -> None:
    """Write the orders' states after their transitions and append the history entries.

    The caller holds the row locks (``lock_for_reactions``) and passes every column it
    sets, already decided: the rules stay in the service. An order moved twice is written
    once, as its last move left it.
    """
    if not moves:
        return
    final = list({move.order.id: move for move in moves}.values())
    db = await driver_connection(session)
    await db.execute(
        APPLY_MOVES,
        [move.order.id for move in final],
        [move.order.status.value for move in final],
        [move.order.payment_id for move in final],
        [move.order.payment_requests for move in final],
        [move.order.sweep_due_at for move in final],
        [move.order.payment_token for move in final],
        [move.at for move in final],
        [move.order.reservation_expires_at for move in final],
        [move.order.refund_amount for move in final],
        [move.order.refund_currency for move in final],
        [move.order.id for move in moves],
        [move.order.status.value for move in moves],
        [move.reason for move in moves],
        [move.at for move in moves],
    )


async def page(
    *,
    session: AsyncSession,
    user_id: uuid.UUID | None,
    status: OrderStatus | None,
    before: uuid.UUID | None,
    limit: int,
) -> Sequence[Order]:
    """Newest first (ids are time-ordered); ``limit + 1`` rows so the caller knows if more."""
    statement = select(Order).order_by(Order.id.desc()).limit(limit + 1)
    if user_id is not None:
        statement = statement.where(Order.user_id == user_id)
    if status is not None:
        statement = statement.where(Order.status == status)
    if before is not None:
        statement = statement.where(Order.id < before)
    return (await session.scalars(statement)).all()


async def claim_due_for_sweep(
    *, session: AsyncSession, now: datetime, limit: int
) -> Sequence[Order]:
    """Orders waiting past their deadline, locked; rows another worker holds are skipped."""
    statement = (
        select(Order)
        .where(Order.sweep_due_at.is_not(None), Order.sweep_due_at <= now)
        .order_by(Order.sweep_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(statement)).all()


# -- POST /orders: fixed SQL on the driver connection -----------------------------------------
#
# Placing an order is the app's hot path: the advisory lock, the record read, and an ORM
# flush of the order, its lines, its first history entry and the record would be six
# statements and several times the CPU (bench/CHANGES.md). Here they are two fixed
# statements on a connection outside any transaction, each atomic by itself: the key's
# record with the prices, then everything a new order writes (one statement for a replay).


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
# lines, first history entry and the service's event are inserted from it; a live record
# (a request with this key committed after our read) yields none and nothing is written.
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
         payment_requests, sweep_due_at, created_at, updated_at)
    SELECT order_id, $1::uuid, $9::text, $10::bigint, $11::text, $12::jsonb, $13::text,
           $14::integer, $15::timestamptz, $7::timestamptz, $7::timestamptz
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
announced AS (
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
    order: NewOrder,
    key: str,
    request_hash: str,
    response_status: int,
    response_body: dict[str, Any],
    replaces_records_before: datetime,
    events: Sequence[Envelope],
) -> Placement:
    """Insert ``order`` (its lines, its one history entry) with the key's record, and
    ``events`` into the outbox, in one statement committed alone; nothing is written unless
    it answers ``PLACED``."""
    [placed_as] = order.history
    row = await db.fetchrow(
        INSERT_ORDER,
        order.user_id,
        key,
        request_hash,
        order.id,
        response_status,
        orjson.dumps(response_body).decode(),
        order.created_at,
        replaces_records_before,
        order.status.value,
        order.total_amount,
        order.currency,
        orjson.dumps(order.shipping_address).decode(),
        order.payment_token,
        order.payment_requests,
        order.sweep_due_at,
        [line.sku for line in order.lines],
        [line.position for line in order.lines],
        [line.name for line in order.lines],
        [line.quantity for line in order.lines],
        [line.unit_price_amount for line in order.lines],
        placed_as.reason,
        *outbox.parameters(events),
        f"orders.idempotency:{order.user_id}:{key}",
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
