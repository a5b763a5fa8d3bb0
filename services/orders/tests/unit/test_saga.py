"""The state machine as a table: every allowed transition, every refused one, their events."""

from __future__ import annotations

import itertools
import uuid

import pytest

from orders.saga import (
    TRANSITIONS,
    OrderFacts,
    OrderStatus,
    Trigger,
    events_for,
    next_status,
    stray_event_compensation,
)
from shared.contracts import Money
from shared.contracts.orders import (
    OrderCancelled,
    OrderConfirmed,
    OrderedQuantity,
    PaymentRequested,
    RefundRequested,
)

S, T = OrderStatus, Trigger

ALLOWED = {
    (S.PENDING, T.STOCK_RESERVED): S.AWAITING_PAYMENT,
    (S.PENDING, T.STOCK_RESERVATION_FAILED): S.REJECTED,
    (S.PENDING, T.RESERVATION_EXPIRED): S.CANCELLED,
    (S.PENDING, T.CANCEL): S.CANCELLED,
    (S.PENDING, T.TIMEOUT): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.PAYMENT_SUCCEEDED): S.CONFIRMED,
    (S.AWAITING_PAYMENT, T.PAYMENT_FAILED): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.RESERVATION_EXPIRED): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.CANCEL): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.TIMEOUT): S.CANCELLED,
    (S.CONFIRMED, T.CANCEL): S.REFUND_PENDING,
    (S.CONFIRMED, T.SHIP): S.SHIPPED,
    (S.SHIPPED, T.DELIVER): S.DELIVERED,
    (S.REFUND_PENDING, T.PAYMENT_REFUNDED): S.REFUNDED,
    (S.CANCELLED, T.PAYMENT_SUCCEEDED): S.REFUND_PENDING,
}

FACTS = OrderFacts(
    order_id=uuid.uuid4(),
    user_id=uuid.uuid4(),
    total=Money(amount=3998, currency="USD"),
    items=[OrderedQuantity(sku="SKU-1", quantity=2)],
    payment_token="tok_visa",
    payment_id=uuid.uuid4(),
    was_confirmed=True,
)


def test_the_table_is_exactly_the_documented_saga() -> None:
    assert dict(TRANSITIONS) == ALLOWED


@pytest.mark.parametrize(("source", "trigger"), list(ALLOWED), ids=lambda v: str(v))
def test_allowed_transition_leads_to_its_target(source: OrderStatus, trigger: Trigger) -> None:
    assert next_status(source, trigger) == ALLOWED[(source, trigger)]


REFUSED = [pair for pair in itertools.product(OrderStatus, Trigger) if pair not in ALLOWED]


@pytest.mark.parametrize(("source", "trigger"), REFUSED, ids=lambda v: str(v))
def test_every_other_transition_is_refused(source: OrderStatus, trigger: Trigger) -> None:
    assert next_status(source, trigger) is None


def test_nothing_moves_a_delivered_rejected_or_refunded_order() -> None:
    for status in (S.DELIVERED, S.REJECTED, S.REFUNDED):
        assert all(next_status(status, trigger) is None for trigger in Trigger)


def test_no_event_moves_an_order_back_to_pending() -> None:
    assert S.PENDING not in TRANSITIONS.values()


def test_reserved_stock_requests_payment_with_the_token_and_total() -> None:
    (event,) = events_for(FACTS, source=S.PENDING, target=S.AWAITING_PAYMENT, reason="r")
    assert event == PaymentRequested(
        order_id=FACTS.order_id, user_id=FACTS.user_id, amount=FACTS.total, payment_token="tok_visa"
    )


def test_payment_confirms_the_order_for_its_quantities() -> None:
    (event,) = events_for(FACTS, source=S.AWAITING_PAYMENT, target=S.CONFIRMED, reason="r")
    assert event == OrderConfirmed(order_id=FACTS.order_id, items=list(FACTS.items))


def test_cancellation_releases_the_stock_with_the_reason() -> None:
    (event,) = events_for(FACTS, source=S.AWAITING_PAYMENT, target=S.CANCELLED, reason="card")
    assert event == OrderCancelled(order_id=FACTS.order_id, reason="card", items=list(FACTS.items))


def test_a_rejected_order_emits_nothing() -> None:
    assert events_for(FACTS, source=S.PENDING, target=S.REJECTED, reason="out_of_stock") == []


def test_cancelling_a_paid_order_requests_a_refund_of_the_total() -> None:
    (event,) = events_for(FACTS, source=S.CONFIRMED, target=S.REFUND_PENDING, reason="r")
    assert FACTS.payment_id is not None
    assert event == RefundRequested(
        order_id=FACTS.order_id, payment_id=FACTS.payment_id, amount=FACTS.total
    )


def test_a_refund_returns_committed_stock_only() -> None:
    (event,) = events_for(FACTS, source=S.REFUND_PENDING, target=S.REFUNDED, reason="refunded")
    assert isinstance(event, OrderCancelled)
    never_committed = OrderFacts(**{**FACTS.__dict__, "was_confirmed": False})
    assert events_for(never_committed, source=S.REFUND_PENDING, target=S.REFUNDED, reason="") == []


def test_shipping_and_delivering_emit_nothing() -> None:
    assert events_for(FACTS, source=S.CONFIRMED, target=S.SHIPPED, reason="") == []
    assert events_for(FACTS, source=S.SHIPPED, target=S.DELIVERED, reason="") == []


def test_stock_reserved_after_a_cancellation_is_released_again() -> None:
    (event,) = stray_event_compensation(FACTS, status=S.CANCELLED, trigger=T.STOCK_RESERVED)
    assert isinstance(event, OrderCancelled)
    assert stray_event_compensation(FACTS, status=S.CONFIRMED, trigger=T.STOCK_RESERVED) == []
    assert stray_event_compensation(FACTS, status=S.CANCELLED, trigger=T.PAYMENT_FAILED) == []
