"""POST /orders: price the order from the replica, write it once per Idempotency-Key.

One statement, atomic by itself, writes the order, its lines, the first history entry, the
idempotency record and ``orders.order_created``: a crash leaves either all of them or none.
A retry with the same key and body is answered what the first request was answered.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from orders.catalog.repository import Price
from orders.config import OrdersSettings
from orders.order import placement_repository as repository
from orders.order.exceptions import (
    IdempotencyKeyInFlight,
    IdempotencyKeyInvalid,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    ProductsUnavailable,
    UnavailableLine,
)
from orders.order.models import PricedLine
from orders.order.recording import envelopes
from orders.order.responses import placed_detail
from orders.order.schemas import PlaceOrder
from orders.saga import HistoryEntry, OrderState, OrderStatus
from shared.auth import Principal
from shared.contracts import Money
from shared.contracts.orders import OrderCreated, OrderedQuantity
from shared.contracts.orders import OrderLine as EventLine
from shared.db import autocommit_connection
from shared.ids import new_id

logger = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255


@dataclass(frozen=True)
class PlacedOrder:
    """The answer to POST /orders: the first response for this key, replayed or new."""

    order_id: uuid.UUID
    status_code: int
    body: dict[str, Any]
    replayed: bool


async def place_order(
    *,
    engine: AsyncEngine,
    settings: OrdersSettings,
    principal: Principal,
    idempotency_key: str | None,
    request: PlaceOrder,
) -> PlacedOrder:
    """Create an order, or answer again what the first request with this key was answered."""
    key = _check_idempotency_key(idempotency_key)
    fingerprint = request_fingerprint(request)
    now = datetime.now(UTC)
    expired_before = now - timedelta(hours=settings.idempotency_retention_hours)
    # The app's hot path, in two statements that each commit alone (BEGIN and COMMIT would be
    # two more round trips): the key's record with the prices, then everything the order
    # writes. (The app answers the driver's errors as it answers SQLAlchemy's: shared.errors.)
    async with autocommit_connection(engine) as db:
        found = await repository.read_key_and_prices(
            db, user_id=principal.user_id, key=key, skus=(line.sku for line in request.items)
        )
        record = found.record
        if record is not None and record.created_at >= expired_before:
            return _replay(record, fingerprint)
        # No record, or an expired one: this request's record replaces it.

        lines = _priced_lines(request, prices=found.prices, settings=settings)
        order = _new_order(
            settings=settings,
            principal=principal,
            lines=lines,
            payment_token=request.payment.token.get_secret_value(),
            now=now,
        )
        address = request.shipping_address.model_dump(mode="json")
        placed_as = HistoryEntry(OrderStatus.PENDING, "order_placed", now)
        body = placed_detail(
            order, lines=lines, shipping_address=address, placed_as=placed_as
        ).model_dump(mode="json")
        placement = await repository.insert_order(
            db,
            order=order,
            lines=lines,
            shipping_address=address,
            placed_as=placed_as,
            key=key,
            request_hash=fingerprint,
            response_status=202,
            response_body=body,
            replaces_records_before=expired_before,
            events=envelopes([_order_created(order, lines)], cause=None),
        )
        if placement is repository.Placement.KEY_TAKEN:
            # A request with this key committed after the record's read: answer what it
            # was answered (its record cannot be pruned yet: it has not expired).
            record = await repository.get_idempotency_record(db, user_id=principal.user_id, key=key)
            if record is not None:
                return _replay(record, fingerprint)
    if placement is not repository.Placement.PLACED:
        # A second request with the key while the first is still running: 409 at once
        # rather than waiting on it (the IETF draft's "in flight" answer).
        raise IdempotencyKeyInFlight(
            "A request with this Idempotency-Key is still being processed; retry later."
        )
    logger.info("order %s placed by %s", order.id, principal.user_id)
    return PlacedOrder(order_id=order.id, status_code=202, body=body, replayed=False)


def _check_idempotency_key(key: str | None) -> str:
    if key is None:
        raise IdempotencyKeyMissing("Send an Idempotency-Key header with every new order.")
    if (
        not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH
        or not key.isascii()
        or not key.isprintable()
    ):
        raise IdempotencyKeyInvalid(
            f"The Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII "
            "characters."
        )
    return key


def request_fingerprint(request: PlaceOrder) -> str:
    """SHA-256 of the request as validated, so formatting differences are the same request."""
    canonical = request.model_dump(mode="json")
    canonical["payment"]["token"] = request.payment.token.get_secret_value()
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _replay(record: repository.StoredAnswer, fingerprint: str) -> PlacedOrder:
    """The first answer to the key again, if this is the same request."""
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key."
        )
    return PlacedOrder(
        order_id=record.order_id,
        status_code=record.response_status,
        body=record.response_body,
        replayed=True,
    )


def _priced_lines(
    request: PlaceOrder, *, prices: Mapping[str, Price], settings: OrdersSettings
) -> list[PricedLine]:
    """The request's lines priced from ``prices``; ``ProductsUnavailable`` if a line cannot
    be sold."""
    unavailable: list[UnavailableLine] = []
    for index, line in enumerate(request.items):
        price = prices.get(line.sku)
        if price is None:
            unavailable.append(UnavailableLine(index, line.sku, "unknown sku"))
        elif not price.active:
            unavailable.append(UnavailableLine(index, line.sku, "not for sale"))
        elif price.currency != settings.store_currency:
            unavailable.append(UnavailableLine(index, line.sku, "priced in another currency"))
    if unavailable:
        raise ProductsUnavailable(unavailable)
    return [
        PricedLine(
            sku=line.sku,
            position=index,
            name=prices[line.sku].name,
            quantity=line.quantity,
            unit_price_amount=prices[line.sku].price_amount,
        )
        for index, line in enumerate(request.items)
    ]


def _new_order(
    *,
    settings: OrdersSettings,
    principal: Principal,
    lines: list[PricedLine],
    payment_token: str,
    now: datetime,
) -> OrderState:
    """The order's first state: pending, watched by the sweeper until inventory answers."""
    total = sum(line.unit_price_amount * line.quantity for line in lines)
    return OrderState(
        id=new_id(),
        user_id=principal.user_id,
        status=OrderStatus.PENDING,
        total=Money(amount=total, currency=settings.store_currency),
        items=[OrderedQuantity(sku=line.sku, quantity=line.quantity) for line in lines],
        payment_token=payment_token,
        payment_id=None,
        payment_requests=0,
        sweep_due_at=now + timedelta(seconds=settings.pending_timeout_seconds),
        reservation_expires_at=None,
        refund=None,
        stock_committed=False,
        carrier=None,
        tracking_number=None,
        updated_at=now,
    )


def _order_created(order: OrderState, lines: list[PricedLine]) -> OrderCreated:
    currency = order.total.currency
    return OrderCreated(
        order_id=order.id,
        user_id=order.user_id,
        items=[
            EventLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=Money(amount=line.unit_price_amount, currency=currency),
            )
            for line in lines
        ],
        total=order.total,
    )
