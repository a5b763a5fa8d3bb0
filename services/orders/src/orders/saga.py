"""The order state machine: one table of allowed transitions, and ``apply``.

``apply(state, step)`` is the one way an order moves: an action (cancel, ship, deliver),
an event from another service, or the sweeper's timeout each become a ``Step``, and
``apply`` answers the order's next state, its history entry and the events to emit.
Everything here is pure (no I/O), so the whole machine is unit-tested without a database;
``orders.order.recording`` writes what ``apply`` decides, in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

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
RESERVATION_EXPIRED = "reservation_expired"

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


# Statuses of an order whose stock inventory should hold as sold.
SOLD: frozenset[OrderStatus] = frozenset({S.CONFIRMED, S.SHIPPED, S.DELIVERED})


def next_status(current: OrderStatus, trigger: Trigger) -> OrderStatus | None:
    """Where ``trigger`` takes an order in ``current``; None when it may not."""
    return TRANSITIONS.get((current, trigger))


def payment_trigger(*, total: Money, charged: Money) -> Trigger:
    """What a successful charge is to the order: a payment only if it is exactly the total,
    in the order's currency; anything else is refunded, never confirmed."""
    return T.PAYMENT_SUCCEEDED if charged == total else T.PAYMENT_AMOUNT_MISMATCH


def reservation_trigger(step: Step, rules: Rules) -> Trigger:
    """What a ``stock_reserved`` is to the order: a reservation to pay for, unless it arrives
    within the margin before it expires (a backlog held it up). Payment asked for then could
    land after inventory released the stock, so the order is cancelled as if it had expired,
    and its customer is never charged for it."""
    if may_request_payment(step.reservation_expires_at, now=step.at, rules=rules):
        return T.STOCK_RESERVED
    return T.RESERVATION_EXPIRED


def reason_for(trigger: Trigger, reason: str) -> str:
    """The history entry's reason: the event's own, except where the saga fixes it."""
    if trigger is T.PAYMENT_AMOUNT_MISMATCH:
        return AMOUNT_MISMATCH
    if trigger is T.RESERVATION_EXPIRED:
        return RESERVATION_EXPIRED
    if trigger is T.STOCK_COMMIT_FAILED:
        return STOCK_UNAVAILABLE
    return reason


def stock_committed(history: Iterable[tuple[OrderStatus, str]]) -> bool:
    """Whether inventory holds the order's stock as sold, from its history: it was confirmed,
    and inventory did not report the commit failed (``order/repository.STATE`` says the same
    in SQL)."""
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


@dataclass(frozen=True, slots=True)
class OrderState:
    """An order as the machine sees it: what ``apply`` reads and decides, and nothing else
    (names, prices and the address never change after placement and are only read)."""

    id: uuid.UUID
    user_id: uuid.UUID
    status: OrderStatus
    total: Money
    items: Sequence[OrderedQuantity]  # the lines' quantities, by position
    payment_token: str | None  # kept only while the order may still need to request payment
    payment_id: uuid.UUID | None
    payment_requests: int
    sweep_due_at: datetime | None  # when the sweeper looks at the order again
    reservation_expires_at: datetime | None  # inventory's deadline, from stock_reserved
    refund: Money | None  # what the refund asks for, set on the move to refund_pending
    stock_committed: bool  # inventory took the stock as sold (``stock_committed``)
    carrier: str | None
    tracking_number: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Step:
    """What is asked of an order: a trigger, the history reason, when, and what it brings."""

    trigger: Trigger
    reason: str
    at: datetime
    payment_id: uuid.UUID | None = None  # a payment's id, kept on the order when it moves
    charged: Money | None = None  # what a successful payment took (decides the trigger)
    reservation_expires_at: datetime | None = None  # from stock_reserved
    carrier: str | None = None  # a shipment's, with the next
    tracking_number: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    status: OrderStatus
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a step does: the order's next state (``state`` itself when its row is left as it
    is), its history entry when the status moved, the events to emit, and the trigger as
    decided (a charge decides between a payment and a mismatch)."""

    state: OrderState
    entry: HistoryEntry | None
    events: list[EventPayload]
    trigger: Trigger
    refused: bool  # the table does not allow the trigger in the order's status


class Rules(Protocol):
    """The settings the machine's deadlines and retries follow (``OrdersSettings``)."""

    @property
    def awaiting_payment_timeout_seconds(self) -> float: ...
    @property
    def refund_pending_timeout_seconds(self) -> float: ...
    @property
    def payment_request_attempts(self) -> int: ...
    @property
    def payment_request_margin_seconds(self) -> float: ...


def apply(state: OrderState, step: Step, rules: Rules) -> Outcome:
    """The one way an order moves: ``step`` applied to ``state``.

    A step the table refuses leaves the order as it is (an action answers 409, an event is
    acknowledged with at most a compensation), except the sweeper's timeout: an order in a
    status that waits on nothing is simply no longer watched. The timeout first asks again
    for what the order waits on, while that may still help (``ask_again``).
    """
    trigger = step.trigger
    if step.charged is not None:
        trigger = payment_trigger(total=state.total, charged=step.charged)
    if trigger is T.STOCK_RESERVED and state.status is S.PENDING:
        trigger = reservation_trigger(step, rules)
    if trigger is T.TIMEOUT:
        asked = ask_again(state, now=step.at, rules=rules)
        if asked is not None:
            return asked
    target = next_status(state.status, trigger)
    if target is None:
        if trigger is T.TIMEOUT:
            unwatched = replace(state, sweep_due_at=None)
            return Outcome(unwatched, None, [], trigger, refused=True)
        compensation = stray_event_compensation(state, status=state.status, trigger=trigger)
        return Outcome(state, None, compensation, trigger, refused=True)
    reason = reason_for(trigger, step.reason)
    moving = replace(
        state,
        payment_id=step.payment_id or state.payment_id,
        reservation_expires_at=step.reservation_expires_at or state.reservation_expires_at,
        carrier=step.carrier or state.carrier,
        tracking_number=step.tracking_number or state.tracking_number,
    )
    events = events_for(
        moving, source=state.status, target=target, reason=reason, charged=step.charged
    )
    refund = refund_amount(moving, charged=step.charged)
    moved = replace(
        _bookkeeping(moving, target, now=step.at, rules=rules),
        status=target,
        refund=refund if target is S.REFUND_PENDING else state.refund,
        stock_committed=stock_committed_after(
            state.stock_committed, target=target, trigger=trigger
        ),
        updated_at=step.at,
    )
    return Outcome(moved, HistoryEntry(target, reason, step.at), events, trigger, refused=False)


def ask_again(state: OrderState, *, now: datetime, rules: Rules) -> Outcome | None:
    """The sweeper's timeout on an order that may still get what it waits on; None if not.

    Refund pending: the refund is asked for again, as first asked, every
    ``refund_pending_timeout_seconds`` for as long as it takes (payments refunds once however
    often it is asked); the order never moves and a client sees no change. Awaiting payment:
    payment is asked for again (payments charges once per order) until the attempts are
    used or the reservation is within the margin of expiring.
    """
    if state.status is S.REFUND_PENDING:
        if state.payment_id is None:  # cannot be asked for: left for an operator
            return Outcome(replace(state, sweep_due_at=None), None, [], T.TIMEOUT, refused=True)
        due = now + timedelta(seconds=rules.refund_pending_timeout_seconds)
        amount = state.refund if state.refund is not None else state.total
        again = refund_request(order_id=state.id, payment_id=state.payment_id, amount=amount)
        return Outcome(replace(state, sweep_due_at=due), None, [again], T.TIMEOUT, refused=False)
    if (
        state.status is S.AWAITING_PAYMENT
        and state.payment_token is not None
        and state.payment_requests < rules.payment_request_attempts
        and may_request_payment(state.reservation_expires_at, now=now, rules=rules)
    ):
        due = now + timedelta(seconds=rules.awaiting_payment_timeout_seconds)
        asked = replace(
            state, payment_requests=state.payment_requests + 1, sweep_due_at=due, updated_at=now
        )
        return Outcome(asked, None, [_payment_requested(state)], T.TIMEOUT, refused=False)
    return None


def may_request_payment(expires_at: datetime | None, *, now: datetime, rules: Rules) -> bool:
    """Whether payment may still be asked for: not within the margin before the reservation
    expires, so a charge asked for now has time to land (and its confirmation to reach
    inventory) before the stock is released."""
    if expires_at is None:  # a producer that does not say: the attempts alone decide
        return True
    return now < expires_at - timedelta(seconds=rules.payment_request_margin_seconds)


def _bookkeeping(
    state: OrderState, target: OrderStatus, *, now: datetime, rules: Rules
) -> OrderState:
    """The columns a move to ``target`` sets besides its status: the sweeper's and payment's."""
    if target is S.AWAITING_PAYMENT:
        deadline = now + timedelta(seconds=rules.awaiting_payment_timeout_seconds)
        return replace(state, payment_requests=state.payment_requests + 1, sweep_due_at=deadline)
    if target is S.REFUND_PENDING:
        # Watched by the sweeper: the refund is asked for again if no payment_refunded has
        # arrived by then (one lost on the way would leave the order here for good).
        deadline = now + timedelta(seconds=rules.refund_pending_timeout_seconds)
        return replace(state, sweep_due_at=deadline, payment_token=None)
    if target not in WAITING:
        # The token is needed only to (re-)request payment; once the order stops waiting
        # for a payment, it is dropped.
        return replace(state, sweep_due_at=None, payment_token=None)
    return state


def events_for(
    state: OrderState,
    *,
    source: OrderStatus,
    target: OrderStatus,
    reason: str,
    charged: Money | None = None,
) -> list[EventPayload]:
    """The events a transition emits (written to the outbox with the state change)."""
    items = list(state.items)
    if target is S.AWAITING_PAYMENT:
        return [_payment_requested(state)]
    if target is S.CONFIRMED:
        return [OrderConfirmed(order_id=state.id, items=items)]
    if target is S.CANCELLED:
        # Stock may be reserved (or about to be): inventory releases whatever it holds.
        return [OrderCancelled(order_id=state.id, reason=reason, items=items)]
    if target is S.REFUND_PENDING:
        refund = refund_request(
            order_id=state.id,
            payment_id=state.payment_id,
            amount=refund_amount(state, charged=charged),
        )
        if source is S.AWAITING_PAYMENT:
            # Still reserved, never committed: released now, not when the refund lands.
            return [refund, OrderCancelled(order_id=state.id, reason=reason, items=items)]
        return [refund]
    if target is S.REFUNDED and state.stock_committed:
        # Committed stock goes back on hand. A refund of a late charge on a cancelled order
        # has nothing to return: its reservation was released when it was cancelled; nor
        # has one whose stock inventory could not commit, or whose wrong charge was refunded
        # before confirmation (released when the refund was requested).
        return [OrderCancelled(order_id=state.id, reason=reason, items=items)]
    return []


def refund_amount(state: OrderState, *, charged: Money | None = None) -> Money:
    """What a refund of the order gives back: what was charged, whatever the order's total
    (a mismatched charge), else the total. Kept on the order when it moves to
    ``refund_pending``, so a refund asked for again asks for the same amount."""
    return charged if charged is not None else state.total


def refund_request(
    *, order_id: uuid.UUID, payment_id: uuid.UUID | None, amount: Money
) -> RefundRequested:
    """``orders.refund_requested``: the first, on the move to ``refund_pending``, and each
    one the sweeper sends again while no ``payment_refunded`` has arrived."""
    if payment_id is None:
        raise ValueError("a refund needs the payment id")
    return RefundRequested(order_id=order_id, payment_id=payment_id, amount=amount)


def _payment_requested(state: OrderState) -> PaymentRequested:
    if state.payment_token is None:
        raise ValueError("an order awaiting payment needs its payment token")
    return PaymentRequested(
        order_id=state.id,
        user_id=state.user_id,
        amount=state.total,
        payment_token=state.payment_token,
    )


def stray_event_compensation(
    state: OrderState, *, status: OrderStatus, trigger: Trigger
) -> list[EventPayload]:
    """Events that undo the effect of an event the table refused, when it left one behind.

    Two do:
    - stock reserved for an order already cancelled (the cancellation overtook the
      reservation): inventory is told again to release it, instead of holding the stock until
      the reservation expires;
    - a reservation expired for an order already sold (confirmed, shipped or delivered):
      inventory expires only reservations it has not committed, so the confirmation never
      reached it (dead-lettered, or still in a backlog). It is sent again; inventory takes the
      stock again or reports ``stock_commit_failed``, and a repeat of a confirmation it
      applied already changes nothing there.
    """
    if trigger is T.STOCK_RESERVED and status is S.CANCELLED:
        return [
            OrderCancelled(
                order_id=state.id,
                reason="cancelled_before_reservation",
                items=list(state.items),
            )
        ]
    if trigger is T.RESERVATION_EXPIRED and status in SOLD:
        return [OrderConfirmed(order_id=state.id, items=list(state.items))]
    return []
