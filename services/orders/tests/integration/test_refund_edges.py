"""The saga's money and stock checks, through the real handlers and inbox: a charge that is
not the order's total never confirms it; a confirmed order whose stock inventory could not
commit is refunded; payment is not asked for, first or again, close to the reservation's
expiry."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orders.config import OrdersSettings
from orders.order.sweeper import SweepResult
from services.orders.tests.conftest import Deliver, OutboxReader, Place, Product, User, event
from services.orders.tests.saga_helpers import (
    PRICE,
    column,
    expire,
    new_order,
    paid_order,
    read,
    reserved,
    succeeded,
    sweep,
    types,
)
from shared.contracts import Money
from shared.contracts.inventory import ReservationExpired, StockCommitFailed, StockReserved
from shared.contracts.payments import PaymentRefunded, PaymentSucceeded

pytestmark = pytest.mark.usefixtures("database")

MISMATCHES = "orders_payment_amount_mismatches_total"
SHIPPED_WITHOUT_STOCK = "orders_shipped_without_stock_total"


async def set_reservation_expiry(
    engine: AsyncEngine, order_id: uuid.UUID, expires_at: datetime
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE orders.orders SET reservation_expires_at = :at WHERE id = :id"),
            {"at": expires_at, "id": order_id},
        )


def mismatches() -> float:
    return REGISTRY.get_sample_value(MISMATCHES) or 0.0


@pytest.mark.parametrize(
    "charged",
    [Money(amount=2 * PRICE - 1, currency="USD"), Money(amount=2 * PRICE, currency="EUR")],
    ids=["amount", "currency"],
)
async def test_a_charge_that_is_not_the_total_never_confirms_and_is_refunded_as_charged(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    caplog: pytest.LogCaptureFixture,
    charged: Money,
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    payment_id, before = uuid.uuid4(), mismatches()
    with caplog.at_level(logging.WARNING, logger="orders"):
        paid = PaymentSucceeded(payment_id=payment_id, order_id=order_id, amount=charged)
        await deliver(event(paid))

    order = await read(client, customer, order_id)
    assert (order["status"], order["status_history"][-1]["reason"]) == (
        "refund_pending",
        "amount_mismatch",
    )
    assert "confirmed" not in [entry["status"] for entry in order["status_history"]]
    assert mismatches() == before + 1
    assert any(
        str(order_id) in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    # Written together (in no particular order): the refund of what was charged, and the
    # release of the reservation at once rather than when the refund lands.
    last_two = dict((await outbox_events(order_id))[-2:])
    assert last_two["orders.refund_requested"] == {
        "order_id": str(order_id),
        "payment_id": str(payment_id),
        "amount": charged.model_dump(),
    }
    assert last_two["orders.order_cancelled"]["reason"] == "amount_mismatch"

    await deliver(event(PaymentRefunded(payment_id=payment_id, order_id=order_id, amount=charged)))
    assert (await read(client, customer, order_id))["status"] == "refunded"
    assert (await types(outbox_events, order_id)).count("orders.order_cancelled") == 1


async def test_a_charge_of_exactly_the_total_confirms_and_is_not_flagged(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    before = mismatches()
    await deliver(event(succeeded(order_id)))
    assert (await read(client, customer, order_id))["status"] == "confirmed"
    assert mismatches() == before


async def test_a_confirmed_order_whose_stock_could_not_be_committed_is_refunded_without_release(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    payment_id = uuid.uuid4()
    await deliver(event(succeeded(order_id, payment_id)))
    failed = StockCommitFailed(order_id=order_id, reason="stock_unavailable", skus=["x"])
    await deliver(event(failed))
    await deliver(event(failed))  # a repeat under another id: the table refuses it

    order = await read(client, customer, order_id)
    assert [(h["status"], h["reason"]) for h in order["status_history"]][-2:] == [
        ("confirmed", "payment_succeeded"),
        ("refund_pending", "stock_unavailable"),
    ]
    kind, refund = (await outbox_events(order_id))[-1]
    assert (kind, refund["payment_id"], refund["amount"]) == (
        "orders.refund_requested",
        str(payment_id),
        {"amount": 2 * PRICE, "currency": "USD"},
    )
    amount = Money(amount=2 * PRICE, currency="USD")
    await deliver(event(PaymentRefunded(payment_id=payment_id, order_id=order_id, amount=amount)))
    assert (await read(client, customer, order_id))["status"] == "refunded"
    # Inventory never committed the stock: no order_cancelled returns it to on hand.
    assert await types(outbox_events, order_id) == [
        "orders.order_created",
        "orders.payment_requested",
        "orders.order_confirmed",
        "orders.refund_requested",
    ]


@pytest.mark.parametrize("status", ["confirmed", "shipped", "delivered"])
async def test_a_sold_order_whose_reservation_expired_sends_its_confirmation_again(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    admin: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    caplog: pytest.LogCaptureFixture,
    status: str,
) -> None:
    # Inventory expires only a reservation it never committed: the order's confirmation was
    # lost (dead-lettered) or is held up. Without it again, the unit goes back on sale.
    order_id = await paid_order(place, product, customer, deliver)
    await _move_to(client, admin, order_id, status)
    with caplog.at_level(logging.WARNING, logger="orders"):
        await deliver(event(ReservationExpired(order_id=order_id)))

    assert (await read(client, customer, order_id))["status"] == status
    confirmations = [
        data for kind, data in await outbox_events(order_id) if kind == "orders.order_confirmed"
    ]
    assert len(confirmations) == 2
    assert confirmations[1] == confirmations[0]
    assert any("sending it again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("status", ["shipped", "delivered"])
async def test_a_shipped_order_whose_stock_could_not_be_committed_is_flagged(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    admin: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    caplog: pytest.LogCaptureFixture,
    status: str,
) -> None:
    # The goods left before inventory reported the unit sold to another order: the order
    # stays as it is, and an operator is told to adjust the stock.
    order_id = await paid_order(place, product, customer, deliver)
    await _move_to(client, admin, order_id, status)
    before_events = await types(outbox_events, order_id)
    before = REGISTRY.get_sample_value(SHIPPED_WITHOUT_STOCK) or 0.0
    failed = StockCommitFailed(order_id=order_id, reason="stock_unavailable", skus=["x"])
    with caplog.at_level(logging.ERROR, logger="orders"):
        await deliver(event(failed))

    assert (await read(client, customer, order_id))["status"] == status
    assert await types(outbox_events, order_id) == before_events
    assert REGISTRY.get_sample_value(SHIPPED_WITHOUT_STOCK) == before + 1
    assert any(
        r.levelno == logging.ERROR and str(order_id) in r.getMessage() for r in caplog.records
    )


async def _move_to(
    client: httpx.AsyncClient, admin: User, order_id: uuid.UUID, status: str
) -> None:
    """Ship (and deliver) a confirmed order as the admin, up to ``status``."""
    if status in ("shipped", "delivered"):
        shipment = {"carrier": "UPS", "tracking_number": "1Z999"}
        shipped = await client.post(
            f"/api/v1/orders/{order_id}/ship", json=shipment, headers=admin.headers
        )
        assert shipped.status_code == 200, shipped.text
    if status == "delivered":
        delivered = await client.post(f"/api/v1/orders/{order_id}/deliver", headers=admin.headers)
        assert delivered.status_code == 200, delivered.text


@pytest.mark.parametrize(
    ("expires_in", "asked_again"),
    [(timedelta(seconds=60), False), (timedelta(minutes=15), True)],
    ids=["within-margin", "well-before"],
)
async def test_payment_is_asked_for_again_only_well_before_the_reservation_expires(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    expires_in: timedelta,
    asked_again: bool,
) -> None:
    assert settings.payment_request_margin_seconds > expires_in.total_seconds() or asked_again
    order_id = await new_order(place, product, customer)
    now = datetime.now(UTC).replace(microsecond=0)
    held = StockReserved(
        order_id=order_id, items=reserved(order_id).items, expires_at=now + timedelta(minutes=15)
    )
    await deliver(event(held))
    assert await column(engine, order_id, "reservation_expires_at") == now + timedelta(minutes=15)

    # Time passes: the reservation's expiry is now ``expires_in`` away, and the sweeper's
    # next look is due.
    await set_reservation_expiry(engine, order_id, now + expires_in)
    await expire(engine, order_id)
    result = await sweep(sessionmaker, settings)
    assert result == SweepResult(
        payment_requested_again=int(asked_again), cancelled=int(not asked_again)
    )
    kinds = await types(outbox_events, order_id)
    assert kinds.count("orders.payment_requested") == 1 + asked_again
    order = await read(client, customer, order_id)
    if not asked_again:
        assert (order["status"], order["status_history"][-1]["reason"]) == (
            "cancelled",
            "payment_timeout",
        )
        assert kinds[-1] == "orders.order_cancelled"
    else:
        assert order["status"] == "awaiting_payment"


async def test_stock_reserved_arriving_within_the_margin_cancels_without_charging(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    settings: OrdersSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A backlog held stock_reserved up until its reservation is about to lapse: payment is
    never asked for (a charge then could land after the stock is released); the order is
    cancelled and the reservation released at once."""
    order_id = await new_order(place, product, customer)
    late = timedelta(seconds=settings.payment_request_margin_seconds / 2)
    expires_at = datetime.now(UTC).replace(microsecond=0) + late
    held = StockReserved(order_id=order_id, items=reserved(order_id).items, expires_at=expires_at)
    with caplog.at_level(logging.WARNING, logger="orders"):
        await deliver(event(held))

    order = await read(client, customer, order_id)
    assert (order["status"], order["status_history"][-1]["reason"]) == (
        "cancelled",
        "reservation_expired",
    )
    assert await types(outbox_events, order_id) == [
        "orders.order_created",
        "orders.order_cancelled",
    ]
    assert any("too close to that to ask for payment" in r.getMessage() for r in caplog.records)
