"""The state machine as a table: every allowed transition, every refused one, their events."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orders.saga import (
    AMOUNT_MISMATCH,
    STOCK_UNAVAILABLE,
    TRANSITIONS,
    OrderState,
    OrderStatus,
    Trigger,
    events_for,
    next_status,
    payment_trigger,
    reason_for,
    refund_amount,
    refund_request,
    stock_committed,
    stock_committed_after,
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
    (S.AWAITING_PAYMENT, T.PAYMENT_AMOUNT_MISMATCH): S.REFUND_PENDING,
    (S.AWAITING_PAYMENT, T.PAYMENT_FAILED): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.RESERVATION_EXPIRED): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.CANCEL): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.TIMEOUT): S.CANCELLED,
    (S.CONFIRMED, T.CANCEL): S.REFUND_PENDING,
    (S.CONFIRMED, T.STOCK_COMMIT_FAILED): S.REFUND_PENDING,
    (S.CONFIRMED, T.SHIP): S.SHIPPED,
    (S.SHIPPED, T.DELIVER): S.DELIVERED,
    (S.REFUND_PENDING, T.PAYMENT_REFUNDED): S.REFUNDED,
    (S.CANCELLED, T.PAYMENT_SUCCEEDED): S.REFUND_PENDING,
    (S.CANCELLED, T.PAYMENT_AMOUNT_MISMATCH): S.REFUND_PENDING,
}

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

FACTS = OrderState(
    id=uuid.uuid4(),
    user_id=uuid.uuid4(),
    status=S.CONFIRMED,
    total=Money(amount=3998, currency="USD"),
    items=[OrderedQuantity(sku="SKU-1", quantity=2)],
    payment_token="tok_visa",
    payment_id=uuid.uuid4(),
    payment_requests=1,
    sweep_due_at=None,
    reservation_expires_at=None,
    refund=None,
    stock_committed=True,
    carrier=None,
    tracking_number=None,
    updated_at=NOW - timedelta(hours=1),
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
        order_id=FACTS.id, user_id=FACTS.user_id, amount=FACTS.total, payment_token="tok_visa"
    )


def test_payment_confirms_the_order_for_its_quantities() -> None:
    (event,) = events_for(FACTS, source=S.AWAITING_PAYMENT, target=S.CONFIRMED, reason="r")
    assert event == OrderConfirmed(order_id=FACTS.id, items=list(FACTS.items))


def test_cancellation_releases_the_stock_with_the_reason() -> None:
    (event,) = events_for(FACTS, source=S.AWAITING_PAYMENT, target=S.CANCELLED, reason="card")
    assert event == OrderCancelled(order_id=FACTS.id, reason="card", items=list(FACTS.items))


def test_a_rejected_order_emits_nothing() -> None:
    assert events_for(FACTS, source=S.PENDING, target=S.REJECTED, reason="out_of_stock") == []


def test_cancelling_a_paid_order_requests_a_refund_of_the_total() -> None:
    (event,) = events_for(FACTS, source=S.CONFIRMED, target=S.REFUND_PENDING, reason="r")
    assert FACTS.payment_id is not None
    assert event == RefundRequested(
        order_id=FACTS.id, payment_id=FACTS.payment_id, amount=FACTS.total
    )


def test_a_refund_asks_for_what_was_charged_else_the_total() -> None:
    assert refund_amount(FACTS) == FACTS.total
    charged = Money(amount=FACTS.total.amount + 1, currency="EUR")
    assert refund_amount(FACTS, charged=charged) == charged


def test_a_refund_request_needs_the_payment_id() -> None:
    with pytest.raises(ValueError, match="payment id"):
        refund_request(order_id=FACTS.id, payment_id=None, amount=FACTS.total)


def test_a_refund_pending_order_is_never_moved_by_the_sweepers_timeout() -> None:
    # The sweeper asks for its refund again instead: a refund owed is never given up on.
    assert next_status(S.REFUND_PENDING, T.TIMEOUT) is None


def test_a_repeated_refund_announcement_moves_a_refunded_order_nowhere() -> None:
    assert next_status(S.REFUNDED, T.PAYMENT_REFUNDED) is None
    assert stray_event_compensation(FACTS, status=S.REFUNDED, trigger=T.PAYMENT_REFUNDED) == []


def test_a_refund_returns_committed_stock_only() -> None:
    (event,) = events_for(FACTS, source=S.REFUND_PENDING, target=S.REFUNDED, reason="refunded")
    assert isinstance(event, OrderCancelled)
    never_committed = replace(FACTS, stock_committed=False)
    assert events_for(never_committed, source=S.REFUND_PENDING, target=S.REFUNDED, reason="") == []


def test_shipping_and_delivering_emit_nothing() -> None:
    assert events_for(FACTS, source=S.CONFIRMED, target=S.SHIPPED, reason="") == []
    assert events_for(FACTS, source=S.SHIPPED, target=S.DELIVERED, reason="") == []


def test_stock_reserved_after_a_cancellation_is_released_again() -> None:
    (event,) = stray_event_compensation(FACTS, status=S.CANCELLED, trigger=T.STOCK_RESERVED)
    assert isinstance(event, OrderCancelled)
    assert stray_event_compensation(FACTS, status=S.CONFIRMED, trigger=T.STOCK_RESERVED) == []
    assert stray_event_compensation(FACTS, status=S.CANCELLED, trigger=T.PAYMENT_FAILED) == []


@pytest.mark.parametrize("status", [S.CONFIRMED, S.SHIPPED, S.DELIVERED])
def test_an_expired_reservation_of_a_sold_order_sends_its_confirmation_again(
    status: OrderStatus,
) -> None:
    # Inventory expires only what it never committed: the confirmation did not reach it.
    (event,) = stray_event_compensation(FACTS, status=status, trigger=T.RESERVATION_EXPIRED)
    assert event == OrderConfirmed(order_id=FACTS.id, items=list(FACTS.items))


@pytest.mark.parametrize("status", [S.CANCELLED, S.REFUND_PENDING, S.REFUNDED, S.REJECTED])
def test_an_expired_reservation_of_an_unsold_order_needs_nothing(status: OrderStatus) -> None:
    assert stray_event_compensation(FACTS, status=status, trigger=T.RESERVATION_EXPIRED) == []


def test_only_a_charge_of_exactly_the_total_in_its_currency_is_a_payment() -> None:
    total = Money(amount=3998, currency="USD")
    assert payment_trigger(total=total, charged=total) is T.PAYMENT_SUCCEEDED
    for charged in (Money(amount=3997, currency="USD"), Money(amount=3998, currency="EUR")):
        assert payment_trigger(total=total, charged=charged) is T.PAYMENT_AMOUNT_MISMATCH


def test_a_mismatched_charge_is_never_confirmed_but_refunded_as_charged_and_released() -> None:
    assert next_status(S.AWAITING_PAYMENT, T.PAYMENT_AMOUNT_MISMATCH) is S.REFUND_PENDING
    charged = Money(amount=1, currency="USD")
    facts = replace(FACTS, stock_committed=False)
    refund, release = events_for(
        facts,
        source=S.AWAITING_PAYMENT,
        target=S.REFUND_PENDING,
        reason=AMOUNT_MISMATCH,
        charged=charged,
    )
    assert FACTS.payment_id is not None
    assert refund == RefundRequested(order_id=FACTS.id, payment_id=FACTS.payment_id, amount=charged)
    assert release == OrderCancelled(
        order_id=FACTS.id, reason=AMOUNT_MISMATCH, items=list(FACTS.items)
    )
    # Released when the refund was requested: the refund itself returns nothing.
    assert events_for(facts, source=S.REFUND_PENDING, target=S.REFUNDED, reason="") == []


def test_a_mismatched_late_charge_on_a_cancelled_order_is_refunded_without_a_second_release() -> (
    None
):
    charged = Money(amount=5, currency="EUR")
    facts = replace(FACTS, stock_committed=False)
    (refund,) = events_for(
        facts, source=S.CANCELLED, target=S.REFUND_PENDING, reason=AMOUNT_MISMATCH, charged=charged
    )
    assert isinstance(refund, RefundRequested)
    assert refund.amount == charged


def test_a_failed_stock_commit_refunds_the_total_and_the_refund_returns_no_stock() -> None:
    assert next_status(S.CONFIRMED, T.STOCK_COMMIT_FAILED) is S.REFUND_PENDING
    (refund,) = events_for(
        FACTS, source=S.CONFIRMED, target=S.REFUND_PENDING, reason=STOCK_UNAVAILABLE
    )
    assert isinstance(refund, RefundRequested)
    assert refund.amount == FACTS.total
    committed = stock_committed_after(True, target=S.REFUND_PENDING, trigger=T.STOCK_COMMIT_FAILED)
    assert committed is False
    facts = replace(FACTS, stock_committed=committed)
    assert events_for(facts, source=S.REFUND_PENDING, target=S.REFUNDED, reason="") == []


def test_the_saga_fixes_the_history_reason_of_a_mismatch_and_of_a_failed_commit() -> None:
    assert reason_for(T.PAYMENT_AMOUNT_MISMATCH, "payment_succeeded") == AMOUNT_MISMATCH
    assert reason_for(T.STOCK_COMMIT_FAILED, "stock_unavailable: A, B") == STOCK_UNAVAILABLE
    assert reason_for(T.PAYMENT_FAILED, "card_declined") == "card_declined"


def test_stock_is_committed_from_confirmation_until_inventory_reports_it_failed() -> None:
    placed = [(S.PENDING, "order_placed"), (S.AWAITING_PAYMENT, "stock_reserved")]
    confirmed = [*placed, (S.CONFIRMED, "payment_succeeded")]
    assert not stock_committed(placed)
    assert stock_committed(confirmed)
    assert stock_committed([*confirmed, (S.REFUND_PENDING, "cancelled_by_customer")])
    assert not stock_committed([*confirmed, (S.REFUND_PENDING, STOCK_UNAVAILABLE)])
    assert not stock_committed([*placed, (S.REFUND_PENDING, AMOUNT_MISMATCH)])
    assert stock_committed_after(False, target=S.CONFIRMED, trigger=T.PAYMENT_SUCCEEDED)
    assert stock_committed_after(True, target=S.REFUND_PENDING, trigger=T.CANCEL)
