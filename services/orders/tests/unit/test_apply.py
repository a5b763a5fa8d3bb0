"""``saga.apply``: the one way an order moves, for actions, events and the sweeper alike."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from orders.config import OrdersSettings
from orders.saga import HistoryEntry, OrderState, OrderStatus, Step, Trigger, apply
from shared.contracts import Money
from shared.contracts.orders import (
    OrderCancelled,
    OrderedQuantity,
    PaymentRequested,
    RefundRequested,
)

S, T = OrderStatus, Trigger
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOTAL = Money(amount=3000, currency="USD")


@dataclass(frozen=True)
class Rules:
    awaiting_payment_timeout_seconds: float = 300.0
    refund_pending_timeout_seconds: float = 600.0
    payment_request_attempts: int = 3
    payment_request_margin_seconds: float = 120.0


RULES = Rules()

PENDING = OrderState(
    id=uuid.uuid4(),
    user_id=uuid.uuid4(),
    status=S.PENDING,
    total=TOTAL,
    items=[OrderedQuantity(sku="SKU-1", quantity=2)],
    payment_token="tok_visa",
    payment_id=None,
    payment_requests=0,
    sweep_due_at=NOW - timedelta(seconds=1),
    reservation_expires_at=None,
    refund=None,
    stock_committed=False,
    carrier=None,
    tracking_number=None,
    updated_at=NOW - timedelta(minutes=5),
)


def step(trigger: Trigger, reason: str = "r", **brings: object) -> Step:
    return Step(trigger, reason, NOW, **brings)  # type: ignore[arg-type]


def test_the_service_settings_are_the_rules() -> None:
    settings = OrdersSettings()
    assert apply(PENDING, step(T.CANCEL), settings).state.status is S.CANCELLED


def test_reserved_stock_awaits_payment_asks_for_it_and_is_watched() -> None:
    expires = NOW + timedelta(minutes=15)
    outcome = apply(PENDING, step(T.STOCK_RESERVED, reservation_expires_at=expires), RULES)
    assert outcome.entry == HistoryEntry(S.AWAITING_PAYMENT, "r", NOW)
    assert outcome.state == replace(
        PENDING,
        status=S.AWAITING_PAYMENT,
        payment_requests=1,
        sweep_due_at=NOW + timedelta(seconds=300),
        reservation_expires_at=expires,
        updated_at=NOW,
    )
    assert outcome.events == [
        PaymentRequested(
            order_id=PENDING.id, user_id=PENDING.user_id, amount=TOTAL, payment_token="tok_visa"
        )
    ]


def test_a_payment_confirms_keeps_its_id_and_drops_the_token() -> None:
    awaiting = replace(PENDING, status=S.AWAITING_PAYMENT, payment_requests=1)
    payment_id = uuid.uuid4()
    outcome = apply(
        awaiting, step(T.PAYMENT_SUCCEEDED, payment_id=payment_id, charged=TOTAL), RULES
    )
    assert outcome.state.status is S.CONFIRMED
    assert outcome.state.payment_id == payment_id
    assert (outcome.state.payment_token, outcome.state.sweep_due_at) == (None, None)
    assert outcome.state.stock_committed


def test_a_wrong_charge_is_decided_a_mismatch_and_kept_as_the_refund() -> None:
    awaiting = replace(PENDING, status=S.AWAITING_PAYMENT)
    charged = Money(amount=1, currency="USD")
    outcome = apply(
        awaiting, step(T.PAYMENT_SUCCEEDED, payment_id=uuid.uuid4(), charged=charged), RULES
    )
    assert outcome.trigger is T.PAYMENT_AMOUNT_MISMATCH
    assert outcome.state.status is S.REFUND_PENDING
    assert outcome.state.refund == charged
    assert outcome.state.sweep_due_at == NOW + timedelta(seconds=600)
    assert outcome.entry is not None
    assert outcome.entry.reason == "amount_mismatch"


def test_a_refused_step_leaves_the_order_itself() -> None:
    shipped = replace(PENDING, status=S.SHIPPED)
    outcome = apply(shipped, step(T.CANCEL), RULES)
    assert outcome.refused
    assert outcome.state is shipped
    assert (outcome.entry, outcome.events) == (None, [])


def test_stock_reserved_after_a_cancellation_is_refused_and_released_again() -> None:
    cancelled = replace(PENDING, status=S.CANCELLED)
    outcome = apply(cancelled, step(T.STOCK_RESERVED), RULES)
    assert outcome.refused
    assert outcome.state is cancelled
    assert [type(event) for event in outcome.events] == [OrderCancelled]


def test_shipping_keeps_the_carrier_and_tracking_number() -> None:
    confirmed = replace(PENDING, status=S.CONFIRMED, payment_token=None, sweep_due_at=None)
    outcome = apply(confirmed, step(T.SHIP, carrier="DHL", tracking_number="T1"), RULES)
    assert (outcome.state.status, outcome.state.carrier) == (S.SHIPPED, "DHL")
    assert outcome.state.tracking_number == "T1"


def test_the_timeout_cancels_a_pending_order() -> None:
    outcome = apply(PENDING, step(T.TIMEOUT, "reservation_timeout"), RULES)
    assert outcome.state.status is S.CANCELLED
    assert outcome.state.sweep_due_at is None
    assert [type(event) for event in outcome.events] == [OrderCancelled]


def test_the_timeout_asks_for_payment_again_until_the_attempts_are_used() -> None:
    awaiting = replace(PENDING, status=S.AWAITING_PAYMENT, payment_requests=1)
    outcome = apply(awaiting, step(T.TIMEOUT), RULES)
    assert outcome.entry is None
    assert outcome.state.payment_requests == 2
    assert outcome.state.sweep_due_at == NOW + timedelta(seconds=300)
    assert [type(event) for event in outcome.events] == [PaymentRequested]
    used = replace(awaiting, payment_requests=RULES.payment_request_attempts)
    assert apply(used, step(T.TIMEOUT), RULES).state.status is S.CANCELLED


def test_the_timeout_cancels_instead_within_the_margin_before_the_reservation_expires() -> None:
    awaiting = replace(
        PENDING, status=S.AWAITING_PAYMENT, reservation_expires_at=NOW + timedelta(seconds=60)
    )
    assert apply(awaiting, step(T.TIMEOUT), RULES).state.status is S.CANCELLED


@pytest.mark.parametrize("expires_in", [timedelta(seconds=119), timedelta(seconds=-5)])
def test_stock_reserved_too_close_to_its_expiry_cancels_without_asking_for_payment(
    expires_in: timedelta,
) -> None:
    """A backlog held stock_reserved up: a charge asked for now could land after the stock
    is released, so the order is cancelled and the reservation released at once."""
    expires = NOW + expires_in
    outcome = apply(PENDING, step(T.STOCK_RESERVED, reservation_expires_at=expires), RULES)
    assert outcome.entry == HistoryEntry(S.CANCELLED, "reservation_expired", NOW)
    assert outcome.trigger is T.RESERVATION_EXPIRED
    assert outcome.state.payment_requests == 0
    assert outcome.state.payment_token is None
    assert outcome.events == [
        OrderCancelled(order_id=PENDING.id, reason="reservation_expired", items=list(PENDING.items))
    ]


def test_stock_reserved_just_outside_the_margin_still_asks_for_payment() -> None:
    expires = NOW + timedelta(seconds=121)
    outcome = apply(PENDING, step(T.STOCK_RESERVED, reservation_expires_at=expires), RULES)
    assert outcome.state.status is S.AWAITING_PAYMENT
    assert [type(event) for event in outcome.events] == [PaymentRequested]


def test_the_timeout_asks_again_for_a_refund_as_first_asked_without_moving_the_order() -> None:
    charged = Money(amount=1, currency="EUR")
    payment_id = uuid.uuid4()
    pending = replace(PENDING, status=S.REFUND_PENDING, payment_id=payment_id, refund=charged)
    outcome = apply(pending, step(T.TIMEOUT), RULES)
    assert outcome.entry is None
    assert outcome.state.status is S.REFUND_PENDING
    assert outcome.state.updated_at == pending.updated_at  # nothing a client sees changed
    assert outcome.state.sweep_due_at == NOW + timedelta(seconds=600)
    assert outcome.events == [
        RefundRequested(order_id=pending.id, payment_id=payment_id, amount=charged)
    ]


def test_the_timeout_stops_watching_an_order_that_waits_on_nothing() -> None:
    delivered = replace(PENDING, status=S.DELIVERED)
    outcome = apply(delivered, step(T.TIMEOUT), RULES)
    assert outcome.refused
    assert outcome.events == []
    assert outcome.state == replace(delivered, sweep_due_at=None)
