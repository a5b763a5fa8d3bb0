"""The saga driven by events through the real handlers and inbox, and by HTTP actions."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orders.config import OrdersSettings
from orders.order.sweeper import SweepResult
from services.orders.tests.conftest import (
    Deliver,
    OutboxReader,
    Place,
    Product,
    User,
    event,
)
from services.orders.tests.saga_helpers import (
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
from shared.contracts.inventory import (
    ReservationExpired,
    StockReservationFailed,
)
from shared.contracts.payments import PaymentFailed, PaymentRefunded

pytestmark = pytest.mark.usefixtures("database")


async def test_the_happy_path_to_delivered(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    admin: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    assert (await read(client, customer, order_id))["status"] == "awaiting_payment"
    [_, (kind, payment)] = await outbox_events(order_id)
    assert kind == "orders.payment_requested"
    assert payment["payment_token"] == "tok_visa"
    assert payment["amount"] == {"amount": 3000, "currency": "USD"}

    await deliver(event(succeeded(order_id)))
    assert await column(engine, order_id, "payment_token") is None  # no longer needed once paid
    ship = await client.post(
        f"/api/v1/orders/{order_id}/ship",
        json={"carrier": "UPS", "tracking_number": "1Z999"},
        headers=admin.headers,
    )
    assert ship.status_code == 200
    assert ship.json()["shipment"] == {"carrier": "UPS", "tracking_number": "1Z999"}
    deliver_response = await client.post(
        f"/api/v1/orders/{order_id}/deliver", headers=admin.headers
    )
    assert deliver_response.json()["status"] == "delivered"

    order = await read(client, customer, order_id)
    assert [h["status"] for h in order["status_history"]] == [
        "pending",
        "awaiting_payment",
        "confirmed",
        "shipped",
        "delivered",
    ]
    assert "tok_visa" not in str(order)
    assert await types(outbox_events, order_id) == [
        "orders.order_created",
        "orders.payment_requested",
        "orders.order_confirmed",
    ]


async def test_failed_reservation_rejects_the_order_and_emits_nothing(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    engine: AsyncEngine,
) -> None:
    order_id = await new_order(place, product, customer)
    failed = StockReservationFailed(order_id=order_id, reason="insufficient_stock", skus=["x"])
    await deliver(event(failed))
    order = await read(client, customer, order_id)
    assert order["status"] == "rejected"
    assert order["status_history"][-1]["reason"] == "insufficient_stock"
    assert await types(outbox_events, order_id) == ["orders.order_created"]
    assert await column(engine, order_id, "payment_token") is None


async def test_failed_payment_cancels_with_the_payment_reason_and_releases_stock(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    failed = PaymentFailed(payment_id=uuid.uuid4(), order_id=order_id, reason="card_declined")
    await deliver(event(failed))
    order = await read(client, customer, order_id)
    assert (order["status"], order["status_history"][-1]["reason"]) == (
        "cancelled",
        "card_declined",
    )
    kind, data = (await outbox_events(order_id))[-1]
    assert kind == "orders.order_cancelled"
    assert data["reason"] == "card_declined"
    assert data["items"] == [{"sku": order["items"][0]["sku"], "quantity": 2}]


@pytest.mark.parametrize("reserved_first", [True, False], ids=["awaiting", "pending"])
async def test_an_expired_reservation_cancels_the_order(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    reserved_first: bool,
) -> None:
    order_id = await new_order(place, product, customer)
    if reserved_first:
        await deliver(event(reserved(order_id)))
    await deliver(event(ReservationExpired(order_id=order_id)))
    order = await read(client, customer, order_id)
    assert (order["status"], order["status_history"][-1]["reason"]) == (
        "cancelled",
        "reservation_expired",
    )
    assert (await types(outbox_events, order_id))[-1] == "orders.order_cancelled"


async def test_cancel_before_payment_cancels_and_releases_stock(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    response = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=customer.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["status_history"][-1]["reason"] == "cancelled_by_customer"
    assert (await types(outbox_events, order_id))[-1] == "orders.order_cancelled"


async def test_cancel_after_payment_refunds_then_returns_the_stock(
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
    response = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=customer.headers)
    assert response.json()["status"] == "refund_pending"
    kind, refund = (await outbox_events(order_id))[-1]
    assert kind == "orders.refund_requested"
    assert refund == {
        "order_id": str(order_id),
        "payment_id": str(payment_id),
        "amount": {"amount": 3000, "currency": "USD"},
    }
    refunded = PaymentRefunded(
        payment_id=payment_id, order_id=order_id, amount=Money(amount=3000, currency="USD")
    )
    await deliver(event(refunded))
    assert (await read(client, customer, order_id))["status"] == "refunded"
    assert await types(outbox_events, order_id) == [
        "orders.order_created",
        "orders.payment_requested",
        "orders.order_confirmed",
        "orders.refund_requested",
        "orders.order_cancelled",
    ]


@pytest.mark.parametrize("status", ["shipped", "delivered"])
async def test_cancel_after_shipping_is_a_409_and_changes_nothing(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    admin: User,
    deliver: Deliver,
    status: str,
) -> None:
    order_id = await paid_order(place, product, customer, deliver)
    shipment = {"carrier": "DHL", "tracking_number": "JD01"}
    await client.post(f"/api/v1/orders/{order_id}/ship", json=shipment, headers=admin.headers)
    if status == "delivered":
        await client.post(f"/api/v1/orders/{order_id}/deliver", headers=admin.headers)
    response = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=customer.headers)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/illegal-transition"
    assert (await read(client, customer, order_id))["status"] == status


async def test_ship_and_deliver_out_of_order_are_409(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    admin: User,
    deliver: Deliver,
) -> None:
    order_id = await new_order(place, product, customer)
    shipment = {"carrier": "DHL", "tracking_number": "JD01"}
    ship = await client.post(
        f"/api/v1/orders/{order_id}/ship", json=shipment, headers=admin.headers
    )
    assert ship.status_code == 409
    deliver_early = await client.post(f"/api/v1/orders/{order_id}/deliver", headers=admin.headers)
    assert deliver_early.status_code == 409
    order = await read(client, customer, order_id)
    assert (order["status"], order["shipment"]) == ("pending", None)
    cancelled = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=admin.headers)
    assert cancelled.json()["status_history"][-1]["reason"] == "cancelled_by_admin"
    again = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=customer.headers)
    assert again.status_code == 409


async def test_ship_and_deliver_are_admin_only_and_reject_unknown_fields(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    admin: User,
) -> None:
    order_id = await paid_order(place, product, customer, deliver)
    shipment = {"carrier": "DHL", "tracking_number": "JD01"}
    url = f"/api/v1/orders/{order_id}"
    assert (
        await client.post(f"{url}/ship", json=shipment, headers=customer.headers)
    ).status_code == 403
    assert (await client.post(f"{url}/deliver", headers=customer.headers)).status_code == 403
    extra = {**shipment, "status": "delivered"}
    assert (await client.post(f"{url}/ship", json=extra, headers=admin.headers)).status_code == 422
    assert (await read(client, customer, order_id))["status"] == "confirmed"


async def test_a_repeated_event_is_applied_once(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
) -> None:
    order_id = await new_order(place, product, customer)
    same = event(reserved(order_id))
    await deliver(same)
    await deliver(same)  # redelivery: the inbox absorbs it
    await deliver(event(reserved(order_id)))  # a duplicate with its own id: the table refuses
    assert await types(outbox_events, order_id) == [
        "orders.order_created",
        "orders.payment_requested",
    ]
    assert len((await read(client, customer, order_id))["status_history"]) == 2


async def test_late_events_never_move_an_order_backwards(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
) -> None:
    order_id = await paid_order(place, product, customer, deliver)
    before = await types(outbox_events, order_id)
    await deliver(event(reserved(order_id)))
    await deliver(event(StockReservationFailed(order_id=order_id, reason="late", skus=[])))
    await deliver(event(PaymentFailed(payment_id=uuid.uuid4(), order_id=order_id, reason="x")))
    await deliver(event(succeeded(order_id)))
    order = await read(client, customer, order_id)
    assert order["status"] == "confirmed"
    assert len(order["status_history"]) == 3
    assert await types(outbox_events, order_id) == before


async def test_a_payment_landing_after_cancellation_is_refunded(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    await client.post(f"/api/v1/orders/{order_id}/cancel", headers=customer.headers)
    payment_id = uuid.uuid4()
    await deliver(event(succeeded(order_id, payment_id)))
    assert (await read(client, customer, order_id))["status"] == "refund_pending"
    kind, refund = (await outbox_events(order_id))[-1]
    assert (kind, refund["payment_id"]) == ("orders.refund_requested", str(payment_id))
    amount = Money(amount=3000, currency="USD")
    await deliver(event(PaymentRefunded(payment_id=payment_id, order_id=order_id, amount=amount)))
    assert (await read(client, customer, order_id))["status"] == "refunded"
    # The stock was released at cancellation: the refund does not release it twice.
    assert (await types(outbox_events, order_id)).count("orders.order_cancelled") == 1


async def test_stock_reserved_after_a_cancellation_is_released_again(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
) -> None:
    order_id = await new_order(place, product, customer)
    await client.post(f"/api/v1/orders/{order_id}/cancel", headers=customer.headers)
    await deliver(event(reserved(order_id)))
    assert (await read(client, customer, order_id))["status"] == "cancelled"
    assert await types(outbox_events, order_id) == [
        "orders.order_created",
        "orders.order_cancelled",
        "orders.order_cancelled",
    ]


async def test_an_event_for_an_unknown_order_is_acknowledged_without_effect(
    deliver: Deliver, engine: AsyncEngine
) -> None:
    await deliver(event(reserved(uuid.uuid4())))  # no exception: the consumer acks it


async def test_the_sweeper_cancels_an_order_stuck_in_pending(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    outbox_events: OutboxReader,
) -> None:
    order_id = await new_order(place, product, customer)
    await expire(engine, order_id)
    result = await sweep(sessionmaker, settings)
    assert result == SweepResult(payment_requested_again=0, cancelled=1)
    order = await read(client, customer, order_id)
    assert (order["status"], order["status_history"][-1]["reason"]) == (
        "cancelled",
        "reservation_timeout",
    )
    assert (await types(outbox_events, order_id))[-1] == "orders.order_cancelled"


async def test_the_sweeper_requests_payment_again_then_cancels(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    deliver: Deliver,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    outbox_events: OutboxReader,
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    for _ in range(settings.payment_request_attempts - 1):
        await expire(engine, order_id)
        result = await sweep(sessionmaker, settings)
        assert result == SweepResult(payment_requested_again=1, cancelled=0)
    await expire(engine, order_id)
    result = await sweep(sessionmaker, settings)
    assert result == SweepResult(payment_requested_again=0, cancelled=1)
    kinds = await types(outbox_events, order_id)
    assert kinds.count("orders.payment_requested") == settings.payment_request_attempts
    assert kinds[-1] == "orders.order_cancelled"
    assert (await read(client, customer, order_id))["status_history"][-1]["reason"] == (
        "payment_timeout"
    )
    assert await column(engine, order_id, "payment_token") is None


async def test_concurrent_sweepers_resolve_each_stuck_order_once(
    place: Place,
    product: Product,
    customer: User,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
    outbox_events: OutboxReader,
) -> None:
    import asyncio

    order_ids = [await new_order(place, product, customer) for _ in range(6)]
    for order_id in order_ids:
        await expire(engine, order_id)

    results = await asyncio.gather(*(sweep(sessionmaker, settings) for _ in range(4)))
    assert sum(result.cancelled for result in results) == 6
    for order_id in order_ids:
        assert (await types(outbox_events, order_id)).count("orders.order_cancelled") == 1


@pytest.mark.parametrize("action", ["cancel", "deliver"])
@pytest.mark.parametrize(
    "body", [{"status": "confirmed"}, {"reason": "changed my mind"}, [], "cancel"]
)
async def test_an_action_body_with_anything_in_it_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    admin: User,
    deliver: Deliver,
    outbox_events: OutboxReader,
    action: str,
    body: object,
) -> None:
    order_id = await new_order(place, product, customer)
    await deliver(event(reserved(order_id)))
    caller = customer if action == "cancel" else admin
    response = await client.post(
        f"/api/v1/orders/{order_id}/{action}", json=body, headers=caller.headers
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await read(client, customer, order_id))["status"] == "awaiting_payment"
    assert (await types(outbox_events, order_id))[-1] == "orders.payment_requested"


async def test_cancel_takes_an_empty_object_as_well_as_no_body(
    client: httpx.AsyncClient, place: Place, product: Product, customer: User
) -> None:
    with_object = await new_order(place, product, customer)
    without = await new_order(place, product, customer)
    path = "/api/v1/orders/{}/cancel"
    cancelled = await client.post(path.format(with_object), json={}, headers=customer.headers)
    assert cancelled.json()["status"] == "cancelled"
    cancelled = await client.post(path.format(without), headers=customer.headers)
    assert cancelled.json()["status"] == "cancelled"
