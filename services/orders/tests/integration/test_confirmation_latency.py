"""The placed → confirmed histogram (the order-confirmation SLO): one observation per order
confirmed, none for an event that does not confirm it."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from services.orders.tests.conftest import Deliver, Place, Product, User, event, order_body
from shared.contracts import Money
from shared.contracts.inventory import ReservedLine, StockReserved
from shared.contracts.payments import PaymentSucceeded

pytestmark = pytest.mark.usefixtures("database")

PRICE = 1500


def confirmations() -> float:
    return REGISTRY.get_sample_value("orders_placed_to_confirmed_seconds_count") or 0.0


def paid(order_id: uuid.UUID) -> PaymentSucceeded:
    return PaymentSucceeded(
        payment_id=uuid.uuid4(), order_id=order_id, amount=Money(amount=PRICE, currency="USD")
    )


async def test_each_confirmed_order_is_observed_once(
    place: Place, product: Product, customer: User, deliver: Deliver
) -> None:
    sku = await product(price=PRICE)
    response = await place(customer, order_body((sku, 1)))
    assert response.status_code == 202, response.text
    order_id = uuid.UUID(response.json()["id"])
    before = confirmations()

    await deliver(
        event(StockReserved(order_id=order_id, items=[ReservedLine(sku=sku, quantity=1)]))
    )
    assert confirmations() == before  # reserved is not confirmed yet

    payment = event(paid(order_id))
    await deliver(payment)
    assert confirmations() == before + 1
    every = {"le": "+Inf"}
    assert REGISTRY.get_sample_value("orders_placed_to_confirmed_seconds_bucket", every) == (
        before + 1
    )

    await deliver(payment)  # the same event again: skipped by the inbox
    await deliver(event(paid(order_id)))  # another payment: the order is confirmed already
    assert confirmations() == before + 1
