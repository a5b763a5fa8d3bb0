"""The order state machine: one table of allowed transitions, and what each one emits.

Everything here is pure (no I/O), so the whole machine is unit-tested without a database.
``orders.order.service`` applies a transition: it locks the order, asks ``next_status``,
records the history entry and writes the events ``events_for`` returns to the outbox, all
in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from shared.contracts import EventPayload, Money
from shared.contracts.orders import (
    OrderCancelled,
    OrderConfirmed,
    OrderedQuantity,
    PaymentRequested,
    RefundRequested,
)


class OrderStatus(StrEnum):
    PENDING = "pending"
    AWAITING_PAYMENT = "awaiting_payment"
    CONFIRMED = "confirmed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    REFUND_PENDING = "refund_pending"
    REFUNDED = "refunded"


class Trigger(StrEnum):
    """What may move an order: an event from another service, an action, or the sweeper."""

    STOCK_RESERVED = "stock_reserved"
    STOCK_RESERVATION_FAILED = "stock_reservation_failed"
    RESERVATION_EXPIRED = "reservation_expired"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    # A charge that is not exactly the order's total (amount or currency): never confirms.
    PAYMENT_AMOUNT_MISMATCH = "payment_amount_mismatch"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_REFUNDED = "payment_refunded"
    # Inventory could not commit the stock of a confirmed order (its reservation lapsed and
    # the stock was sold meanwhile).
    STOCK_COMMIT_FAILED = "stock_commit_failed"
    CANCEL = "cancel"
    SHIP = "ship"
    DELIVER = "deliver"
    TIMEOUT = "timeout"


S, T = OrderStatus, Trigger

# History reasons the saga itself relies on (``stock_committed`` reads the second back).
AMOUNT_MISMATCH = "amount_mismatch"
STOCK_UNAVAILABLE = "stock_unavailable"

# The whole state machine. A (status, trigger) pair that is not here is illegal: an action
# answers 409, an event is logged and acknowledged without effect, so a late or repeated
# event can never move an order backwards.
TRANSITIONS: Mapping[tuple[OrderStatus, Trigger], OrderStatus] = {
    (S.PENDING, T.STOCK_RESERVED): S.AWAITING_PAYMENT,
    (S.PENDING, T.STOCK_RESERVATION_FAILED): S.REJECTED,
    # An expiry overtaking its own stock_reserved: the reservation is gone already.
    (S.PENDING, T.RESERVATION_EXPIRED): S.CANCELLED,
    (S.PENDING, T.CANCEL): S.CANCELLED,
    (S.PENDING, T.TIMEOUT): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.PAYMENT_SUCCEEDED): S.CONFIRMED,
    # A wrong charge is given back; the reservation is released at once.
    (S.AWAITING_PAYMENT, T.PAYMENT_AMOUNT_MISMATCH): S.REFUND_PENDING,
    (S.AWAITING_PAYMENT, T.PAYMENT_FAILED): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.RESERVATION_EXPIRED): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.CANCEL): S.CANCELLED,
    (S.AWAITING_PAYMENT, T.TIMEOUT): S.CANCELLED,
    (S.CONFIRMED, T.CANCEL): S.REFUND_PENDING,
    # Paid, but the stock is gone: no order stays confirmed without its stock committed.
    (S.CONFIRMED, T.STOCK_COMMIT_FAILED): S.REFUND_PENDING,
    (S.CONFIRMED, T.SHIP): S.SHIPPED,
    (S.SHIPPED, T.DELIVER): S.DELIVERED,
    (S.REFUND_PENDING, T.PAYMENT_REFUNDED): S.REFUNDED,
    # A charge that lands after the order was cancelled (the customer cancelled while the
    # payment was in flight, or the reservation expired) is given back, never kept.
    (S.CANCELLED, T.PAYMENT_SUCCEEDED): S.REFUND_PENDING,
    (S.CANCELLED, T.PAYMENT_AMOUNT_MISMATCH): S.REFUND_PENDING,
}

# Statuses that wait on inventory or on a payment: the sweeper cancels an order left in one
# too long, and the payment token is kept only while in one.
WAITING: frozenset[OrderStatus] = frozenset({S.PENDING, S.AWAITING_PAYMENT})


def next_status(current: OrderStatus, trigger: Trigger) -> OrderStatus | None:
    """Where ``trigger`` takes an order in ``current``; None when it may not."""
    return TRANSITIONS.get((current, trigger))


def payment_trigger(*, total: Money, charged: Money) -> Trigger:
    """What a successful charge is to the order: a payment only if it is exactly the total,
    in the order's currency; anything else is refunded, never confirmed."""
    return T.PAYMENT_SUCCEEDED if charged == total else T.PAYMENT_AMOUNT_MISMATCH


def reason_for(trigger: Trigger, reason: str) -> str:
    """The history entry's reason: the event's own, except where the saga fixes it."""
    if trigger is T.PAYMENT_AMOUNT_MISMATCH:
        return AMOUNT_MISMATCH
    if trigger is T.STOCK_COMMIT_FAILED:
        return STOCK_UNAVAILABLE
    return reason


def stock_committed(history: Iterable[tuple[OrderStatus, str]]) -> bool:
    """Whether inventory holds the order's stock as sold, from its history: it was confirmed,
    and inventory did not report the commit failed (``repository.LOCK_FOR_REACTIONS`` says
    the same in SQL)."""
    confirmed = failed = False
    for status, reason in history:
        confirmed = confirmed or status is S.CONFIRMED
        failed = failed or (status is S.REFUND_PENDING and reason == STOCK_UNAVAILABLE)
    return confirmed and not failed


def stock_committed_after(committed: bool, *, target: OrderStatus, trigger: Trigger) -> bool:
    """``stock_committed`` once a transition to ``target`` by ``trigger`` is recorded."""
    if trigger is T.STOCK_COMMIT_FAILED:
        return False
    return committed or target is S.CONFIRMED


@dataclass(frozen=True)
class OrderFacts:
    """What the effects of a transition need to know about the order."""

    order_id: uuid.UUID
    user_id: uuid.UUID
    total: Money
    items: Sequence[OrderedQuantity]
    payment_token: str | None
    payment_id: uuid.UUID | None
    stock_committed: bool  # inventory took the stock as sold (on hand decreased)
    charged: Money | None = None  # what the payment took, when an event says it


def events_for(
    facts: OrderFacts, *, source: OrderStatus, target: OrderStatus, reason: str
) -> list[EventPayload]:
    """The events a transition emits (written to the outbox with the state change)."""
    items = list(facts.items)
    if target is S.AWAITING_PAYMENT:
        if facts.payment_token is None:
            raise ValueError("an order awaiting payment needs its payment token")
        return [
            PaymentRequested(
                order_id=facts.order_id,
                user_id=facts.user_id,
                amount=facts.total,
                payment_token=facts.payment_token,
            )
        ]
    if target is S.CONFIRMED:
        return [OrderConfirmed(order_id=facts.order_id, items=items)]
    if target is S.CANCELLED:
        # Stock may be reserved (or about to be): inventory releases whatever it holds.
        return [OrderCancelled(order_id=facts.order_id, reason=reason, items=items)]
    if target is S.REFUND_PENDING:
        refund = refund_request(
            order_id=facts.order_id, payment_id=facts.payment_id, amount=refund_amount(facts)
        )
        if source is S.AWAITING_PAYMENT:
            # Still reserved, never committed: released now, not when the refund lands.
            return [refund, OrderCancelled(order_id=facts.order_id, reason=reason, items=items)]
        return [refund]
    if target is S.REFUNDED and facts.stock_committed:
        # Committed stock goes back on hand. A refund of a late charge on a cancelled order
        # has nothing to return: its reservation was released when it was cancelled; nor
        # has one whose stock inventory could not commit, or whose wrong charge was refunded
        # before confirmation (released when the refund was requested).
        return [OrderCancelled(order_id=facts.order_id, reason=reason, items=items)]
    return []


def refund_amount(facts: OrderFacts) -> Money:
    """What a refund of the order gives back: what was charged, whatever the order's total
    (a mismatched charge), else the total. Kept on the order when it moves to
    ``refund_pending``, so a refund asked for again asks for the same amount."""
    return facts.charged if facts.charged is not None else facts.total


def refund_request(
    *, order_id: uuid.UUID, payment_id: uuid.UUID | None, amount: Money
) -> RefundRequested:
    """``orders.refund_requested``: the first, on the move to ``refund_pending``, and each
    one the sweeper sends again while no ``payment_refunded`` has arrived."""
    if payment_id is None:
        raise ValueError("a refund needs the payment id")
    return RefundRequested(order_id=order_id, payment_id=payment_id, amount=amount)


def stray_event_compensation(
    facts: OrderFacts, *, status: OrderStatus, trigger: Trigger
) -> list[EventPayload]:
    """Events that undo the effect of an event the table refused, when it left one behind.

    Only one does: stock reserved for an order already cancelled (the cancellation overtook
    the reservation). Inventory is told again to release it, instead of holding the stock
    until the reservation expires.
    """
    if trigger is T.STOCK_RESERVED and status is S.CANCELLED:
        return [
            OrderCancelled(
                order_id=facts.order_id,
                reason="cancelled_before_reservation",
                items=list(facts.items),
            )
        ]
    return []
