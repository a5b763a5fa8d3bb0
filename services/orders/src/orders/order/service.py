"""Business rules of orders and the transaction boundary; the only writer of the outbox.

HTTP actions open their own transaction on the request's session. Event reactions run
inside the consumer's transaction (the inbox key commits with them), so they never commit;
being the worker's hot path, they run fixed SQL on the driver connection, not the ORM.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from orders.catalog.repository import Price
from orders.config import OrdersSettings
from orders.events import outbox
from orders.order import metrics, repository
from orders.order.exceptions import (
    IdempotencyKeyInFlight,
    IdempotencyKeyInvalid,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    IllegalTransition,
    OrderNotFound,
    ProductsUnavailable,
    UnavailableLine,
)
from orders.order.models import NewLine, NewOrder, NewStatusChange, Order, StatusChange
from orders.order.schemas import (
    AddressOut,
    LineOut,
    OrderDetail,
    OrderOut,
    OrderPage,
    PlaceOrder,
    Shipment,
    ShipmentOut,
    StatusChangeOut,
)
from orders.saga import (
    WAITING,
    OrderFacts,
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
from shared.auth import Principal
from shared.context import current_request_id
from shared.contracts import EventPayload, Money
from shared.contracts.orders import (
    OrderCreated,
    OrderedQuantity,
    PaymentRequested,
    RefundRequested,
)
from shared.contracts.orders import OrderLine as EventLine
from shared.cursors import CursorCodec, InvalidCursor
from shared.db import autocommit_connection
from shared.ids import new_id
from shared.messaging import Envelope

logger = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255
PRUNE_BATCH = 1000


def _now() -> datetime:
    return datetime.now(UTC)


# -- placing an order ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacedOrder:
    """The answer to POST /orders: the first response for this key, replayed or new."""

    order_id: uuid.UUID
    status_code: int
    body: dict[str, Any]
    replayed: bool


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


async def place_order(
    *,
    engine: AsyncEngine,
    settings: OrdersSettings,
    principal: Principal,
    idempotency_key: str | None,
    request: PlaceOrder,
) -> PlacedOrder:
    """Create an order, or answer again what the first request with this key was answered.

    One statement, atomic by itself, writes the order, its lines, the first history entry,
    the idempotency record and ``orders.order_created``: a crash leaves either all of them
    or none.
    """
    key = _check_idempotency_key(idempotency_key)
    fingerprint = request_fingerprint(request)
    now = _now()
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

        order = _new_order(
            settings=settings, principal=principal, request=request, prices=found.prices, now=now
        )
        body = to_detail(order).model_dump(mode="json")
        placement = await repository.insert_order(
            db,
            order=order,
            key=key,
            request_hash=fingerprint,
            response_status=202,
            response_body=body,
            replaces_records_before=expired_before,
            events=_events([_order_created(order)], cause=None),
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


def _new_order(
    *,
    settings: OrdersSettings,
    principal: Principal,
    request: PlaceOrder,
    prices: Mapping[str, Price],
    now: datetime,
) -> NewOrder:
    """The order priced from ``prices``, its lines and first history entry, for the caller
    to write; ``ProductsUnavailable`` if a line cannot be sold."""
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

    order_id = new_id()
    lines = [
        NewLine(
            sku=line.sku,
            position=index,
            name=prices[line.sku].name,
            quantity=line.quantity,
            unit_price_amount=prices[line.sku].price_amount,
        )
        for index, line in enumerate(request.items)
    ]
    return NewOrder(
        id=order_id,
        user_id=principal.user_id,
        status=OrderStatus.PENDING,
        total_amount=sum(line.unit_price_amount * line.quantity for line in lines),
        currency=settings.store_currency,
        shipping_address=request.shipping_address.model_dump(mode="json"),
        payment_token=request.payment.token.get_secret_value(),
        payment_requests=0,
        sweep_due_at=now + timedelta(seconds=settings.pending_timeout_seconds),
        created_at=now,
        updated_at=now,
        lines=lines,
        history=[NewStatusChange(status=OrderStatus.PENDING, reason="order_placed", at=now)],
    )


def _order_created(order: NewOrder) -> OrderCreated:
    return OrderCreated(
        order_id=order.id,
        user_id=order.user_id,
        items=[
            EventLine(
                sku=line.sku,
                quantity=line.quantity,
                unit_price=Money(amount=line.unit_price_amount, currency=order.currency),
            )
            for line in order.lines
        ],
        total=Money(amount=order.total_amount, currency=order.currency),
    )


# -- reading ---------------------------------------------------------------------------------


ORDERS_CURSOR = "orders"


def _decode_cursor(cursors: CursorCodec, cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(cursors.decode(ORDERS_CURSOR, cursor))
    except ValueError:  # signed by us yet no id: only a leaked key could make one
        raise InvalidCursor() from None


async def list_orders(
    *,
    session: AsyncSession,
    cursors: CursorCodec,
    principal: Principal,
    status: OrderStatus | None,
    cursor: str | None,
    limit: int,
) -> OrderPage:
    """The caller's orders, newest first (an admin's list holds everyone's)."""
    before = _decode_cursor(cursors, cursor) if cursor is not None else None
    async with session.begin():
        rows = await repository.page(
            session=session,
            user_id=None if principal.is_admin else principal.user_id,
            status=status,
            before=before,
            limit=limit,
        )
    visible = rows[:limit]
    next_cursor = cursors.encode(ORDERS_CURSOR, str(visible[-1].id)) if len(rows) > limit else None
    return OrderPage(items=[to_out(order) for order in visible], next_cursor=next_cursor)


def _visible(order: Order | None, principal: Principal) -> Order:
    # Another user's order answers exactly like a missing one (no existence oracle).
    if order is None or not (principal.is_admin or order.user_id == principal.user_id):
        raise OrderNotFound("No such order.")
    return order


async def get_order(
    *, session: AsyncSession, principal: Principal, order_id: uuid.UUID
) -> OrderDetail:
    async with session.begin():
        order = _visible(await repository.get(session=session, order_id=order_id), principal)
    return to_detail(order)


# -- actions ---------------------------------------------------------------------------------


async def cancel_order(
    *, session: AsyncSession, settings: OrdersSettings, principal: Principal, order_id: uuid.UUID
) -> OrderDetail:
    """Before payment: cancelled (stock released). After: refund requested. Shipped: 409."""
    reason = "cancelled_by_admin" if principal.is_admin else "cancelled_by_customer"
    return await _act(
        session=session,
        settings=settings,
        principal=principal,
        order_id=order_id,
        trigger=Trigger.CANCEL,
        reason=reason,
    )


async def ship_order(
    *,
    session: AsyncSession,
    settings: OrdersSettings,
    principal: Principal,
    order_id: uuid.UUID,
    shipment: Shipment,
) -> OrderDetail:
    return await _act(
        session=session,
        settings=settings,
        principal=principal,
        order_id=order_id,
        trigger=Trigger.SHIP,
        reason=f"shipped with {shipment.carrier}",
        shipment=shipment,
    )


async def deliver_order(
    *, session: AsyncSession, settings: OrdersSettings, principal: Principal, order_id: uuid.UUID
) -> OrderDetail:
    return await _act(
        session=session,
        settings=settings,
        principal=principal,
        order_id=order_id,
        trigger=Trigger.DELIVER,
        reason="delivered",
    )


async def _act(
    *,
    session: AsyncSession,
    settings: OrdersSettings,
    principal: Principal,
    order_id: uuid.UUID,
    trigger: Trigger,
    reason: str,
    shipment: Shipment | None = None,
) -> OrderDetail:
    async with session.begin():
        order = _visible(
            await repository.get(session=session, order_id=order_id, for_update=True), principal
        )
        if next_status(order.status, trigger) is None:
            raise IllegalTransition(
                f"An order that is {order.status.value} cannot {trigger.value}."
            )
        if shipment is not None:
            order.carrier = shipment.carrier
            order.tracking_number = shipment.tracking_number
        await _transition(
            session=session, settings=settings, order=order, trigger=trigger, reason=reason
        )
    return to_detail(order)


# -- event reactions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reaction:
    """One event's claim on an order: the trigger it brings and the history entry's reason."""

    event: Envelope
    order_id: uuid.UUID
    trigger: Trigger
    reason: str
    payment_id: uuid.UUID | None = None  # a payment's id, kept on the order when it moves
    charged: Money | None = None  # what a successful payment took
    reservation_expires_at: datetime | None = None  # from stock_reserved, kept on the order


async def react_all(
    *, session: AsyncSession, settings: OrdersSettings, reactions: Sequence[Reaction]
) -> list[bool]:
    """Apply events to their orders, in turn, inside the consumer's transaction; per
    reaction, False if it was skipped.

    A late, repeated or out-of-order event that the table does not allow is logged and
    acknowledged: it never moves an order backwards.
    """
    # Fixed SQL on the driver connection (this is the worker's hot path), a few statements
    # whatever the number of events: one locks and reads every order named, the machine
    # runs here, one writes every order's final state and history entries, then the outbox
    # write. Two events for one order apply in turn, the second seeing what the first left.
    orders = await repository.lock_for_reactions(
        session=session, order_ids={reaction.order_id for reaction in reactions}
    )
    moves: list[repository.Move] = []
    moved: list[bool] = []
    for reaction in reactions:
        order = orders.get(reaction.order_id)
        if order is None:
            event = reaction.event
            logger.warning(
                "%s %s names unknown order %s; skipped", event.type, event.id, reaction.order_id
            )
            moved.append(False)
            continue
        move = await _react(session, settings=settings, order=order, reaction=reaction)
        if move is not None:
            orders[order.id] = move.order
            moves.append(move)
        moved.append(move is not None)
    await repository.apply_moves(session=session, moves=moves)
    return moved


async def _react(
    session: AsyncSession,
    *,
    settings: OrdersSettings,
    order: repository.LockedOrder,
    reaction: Reaction,
) -> repository.Move | None:
    """The order as ``reaction`` leaves it, its events written; None if the table refused."""
    event, trigger = reaction.event, reaction.trigger
    if reaction.charged is not None:
        total = Money(amount=order.total_amount, currency=order.currency)
        trigger = payment_trigger(total=total, charged=reaction.charged)
        if trigger is Trigger.PAYMENT_AMOUNT_MISMATCH:
            metrics.PAYMENT_AMOUNT_MISMATCHES.inc()
            logger.warning(
                "payment %s of order %s charged %d %s but the order totals %d %s: "
                "not confirmed, refunding what was charged",
                reaction.payment_id,
                order.id,
                reaction.charged.amount,
                reaction.charged.currency,
                total.amount,
                total.currency,
            )
    if trigger is Trigger.STOCK_COMMIT_FAILED:
        logger.warning(
            "order %s (%s): inventory could not commit its stock (%s); refunding",
            order.id,
            order.status.value,
            reaction.reason,
        )
    target = next_status(order.status, trigger)
    if target is None:
        compensation = stray_event_compensation(
            _locked_facts(order), status=order.status, trigger=trigger
        )
        logger.info(
            "%s %s ignored: order %s is %s%s",
            event.type,
            event.id,
            order.id,
            order.status.value,
            " (compensating)" if compensation else "",
        )
        await _emit(session, compensation, cause=event)
        return None
    if reaction.payment_id is not None:
        order = replace(order, payment_id=reaction.payment_id)
    if reaction.reservation_expires_at is not None:
        order = replace(order, reservation_expires_at=reaction.reservation_expires_at)
    now = _now()
    reason = reason_for(trigger, reaction.reason)
    facts = replace(_locked_facts(order), charged=reaction.charged)
    payloads = events_for(facts, source=order.status, target=target, reason=reason)
    if target is OrderStatus.REFUND_PENDING:
        refund = refund_amount(facts)
        order = replace(order, refund_amount=refund.amount, refund_currency=refund.currency)
    after = _bookkeeping(
        target,
        payment_requests=order.payment_requests,
        sweep_due_at=order.sweep_due_at,
        payment_token=order.payment_token,
        settings=settings,
        now=now,
    )
    await _emit(session, payloads, cause=event)
    if target is OrderStatus.CONFIRMED:
        # Inside the consumer's transaction: a batch that fails and is retried counts its
        # confirmations again, rare enough not to move a percentile.
        metrics.observe_confirmation(order.id)
    order = replace(
        order,
        status=target,
        payment_requests=after.payment_requests,
        sweep_due_at=after.sweep_due_at,
        payment_token=after.payment_token,
        stock_committed=stock_committed_after(
            order.stock_committed, target=target, trigger=trigger
        ),
    )
    return repository.Move(order=order, reason=reason, at=now)


# -- stuck orders ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    payment_requested_again: int
    cancelled: int
    refund_requested_again: int = 0

    @property
    def resolved(self) -> int:
        """Orders the pass took: a full batch means more may be due."""
        return self.payment_requested_again + self.cancelled + self.refund_requested_again


async def sweep_stuck_orders(
    *, session: AsyncSession, settings: OrdersSettings, now: datetime | None = None
) -> SweepResult:
    """Resolve one batch of orders that waited too long on inventory or payments.

    Pending too long: cancelled (the order_cancelled releases any reservation inventory may
    hold). Awaiting payment too long: payment requested again (payments charges once per
    order however often it is asked), and after the configured attempts, or once the
    reservation is within ``payment_request_margin_seconds`` of expiring, cancelled. Refund
    pending too long: refund requested again, every ``refund_pending_timeout_seconds`` for as
    long as it takes (payments refunds once however often it is asked, and answers a refund
    made already with its ``payment_refunded`` again); the order never moves here. Rows are
    claimed with SKIP LOCKED, so several workers share the work without meeting.
    """
    now = now or _now()
    requested = cancelled = refunds = 0
    async with session.begin():
        for order in await repository.claim_due_for_sweep(
            session=session, now=now, limit=settings.sweeper_batch_size
        ):
            if order.status is OrderStatus.REFUND_PENDING:
                refunds += await _request_refund_again(
                    session, order=order, settings=settings, now=now
                )
                continue
            if (
                order.status is OrderStatus.AWAITING_PAYMENT
                and order.payment_token is not None
                and order.payment_requests < settings.payment_request_attempts
                and _may_request_payment(order.reservation_expires_at, now=now, settings=settings)
            ):
                order.payment_requests += 1
                order.sweep_due_at = now + timedelta(
                    seconds=settings.awaiting_payment_timeout_seconds
                )
                order.updated_at = now
                await _emit(session, [_payment_requested(order)], cause=None)
                logger.info(
                    "order %s: payment requested again (attempt %d)",
                    order.id,
                    order.payment_requests,
                )
                requested += 1
                continue
            reason = (
                "reservation_timeout" if order.status is OrderStatus.PENDING else "payment_timeout"
            )
            if next_status(order.status, Trigger.TIMEOUT) is None:
                order.sweep_due_at = None  # not waiting any more; nothing to resolve
                continue
            await _transition(
                session=session,
                settings=settings,
                order=order,
                trigger=Trigger.TIMEOUT,
                reason=reason,
                now=now,
            )
            logger.warning("order %s cancelled by the sweeper: %s", order.id, reason)
            cancelled += 1
    return SweepResult(
        payment_requested_again=requested, cancelled=cancelled, refund_requested_again=refunds
    )


async def _request_refund_again(
    session: AsyncSession, *, order: Order, settings: OrdersSettings, now: datetime
) -> bool:
    """Ask payments for the order's refund again, as first asked, and look again later;
    False if it cannot be asked for.

    The order waited ``refund_pending_timeout_seconds`` with no ``payment_refunded``: the
    refund is still owed (payments retries it on its own), or its announcement was lost
    (dead-lettered on its way here), which only a new request brings back. ``updated_at``
    is left alone: nothing a client sees has changed.
    """
    if order.payment_id is None:
        # The move to refund_pending requires the payment id; should a row lack it anyway,
        # it is left for an operator rather than failing every sweep's batch on it.
        logger.error("order %s is refund_pending without a payment id: not swept", order.id)
        order.sweep_due_at = None
        return False
    order.sweep_due_at = now + timedelta(seconds=settings.refund_pending_timeout_seconds)
    await _emit(session, [_refund_requested(order)], cause=None)
    metrics.REFUNDS_REQUESTED_AGAIN.inc()
    logger.warning(
        "order %s: refund of payment %s requested again (refund pending since %s)",
        order.id,
        order.payment_id,
        order.updated_at.isoformat(),
    )
    return True


async def prune_idempotency_keys(
    *, session: AsyncSession, settings: OrdersSettings, now: datetime | None = None
) -> int:
    """Forget keys older than the retention, in bounded batches; the number removed."""
    cutoff = (now or _now()) - timedelta(hours=settings.idempotency_retention_hours)
    total = 0
    while True:
        async with session.begin():
            removed = await repository.delete_expired_idempotency_records(
                session=session, older_than=cutoff, limit=PRUNE_BATCH
            )
        total += removed
        if removed < PRUNE_BATCH:
            return total


def _may_request_payment(
    expires_at: datetime | None, *, now: datetime, settings: OrdersSettings
) -> bool:
    """Whether payment may still be asked for: not within the margin before the reservation
    expires, so a charge asked for now has time to land (and its confirmation to reach
    inventory) before the stock is released."""
    if expires_at is None:  # a producer that does not say: the attempts alone decide
        return True
    return now < expires_at - timedelta(seconds=settings.payment_request_margin_seconds)


# -- the one place a transition happens ------------------------------------------------------


async def _transition(
    *,
    session: AsyncSession,
    settings: OrdersSettings,
    order: Order,
    trigger: Trigger,
    reason: str,
    cause: Envelope | None = None,
    now: datetime | None = None,
) -> None:
    target = next_status(order.status, trigger)
    if target is None:  # callers check first; this guards the table against a slip
        raise IllegalTransition(f"An order that is {order.status.value} cannot {trigger.value}.")
    now = now or _now()
    facts = _facts(order)
    payloads = events_for(facts, source=order.status, target=target, reason=reason)
    if target is OrderStatus.REFUND_PENDING:
        refund = refund_amount(facts)
        order.refund_amount, order.refund_currency = refund.amount, refund.currency
    order.status = target
    order.updated_at = now
    order.history.append(StatusChange(status=target, reason=reason, at=now))
    after = _bookkeeping(
        target,
        payment_requests=order.payment_requests,
        sweep_due_at=order.sweep_due_at,
        payment_token=order.payment_token,
        settings=settings,
        now=now,
    )
    order.payment_requests = after.payment_requests
    order.sweep_due_at = after.sweep_due_at
    order.payment_token = after.payment_token
    await _emit(session, payloads, cause=cause)
    await session.flush()


class _Bookkeeping(NamedTuple):
    """The columns a transition sets besides its status: the sweeper's and payment's."""

    payment_requests: int
    sweep_due_at: datetime | None
    payment_token: str | None


def _bookkeeping(
    target: OrderStatus,
    *,
    payment_requests: int,
    sweep_due_at: datetime | None,
    payment_token: str | None,
    settings: OrdersSettings,
    now: datetime,
) -> _Bookkeeping:
    """Those columns after a transition to ``target`` (one rule for both write paths)."""
    if target is OrderStatus.AWAITING_PAYMENT:
        deadline = now + timedelta(seconds=settings.awaiting_payment_timeout_seconds)
        return _Bookkeeping(payment_requests + 1, deadline, payment_token)
    if target is OrderStatus.REFUND_PENDING:
        # Watched by the sweeper: the refund is asked for again if no payment_refunded has
        # arrived by then (one lost on the way would leave the order here for good).
        deadline = now + timedelta(seconds=settings.refund_pending_timeout_seconds)
        return _Bookkeeping(payment_requests, deadline, None)
    if target not in WAITING:
        # The token is needed only to (re-)request payment; once the order stops waiting
        # for a payment, it is dropped.
        return _Bookkeeping(payment_requests, None, None)
    return _Bookkeeping(payment_requests, sweep_due_at, payment_token)


def _facts(order: Order) -> OrderFacts:
    return OrderFacts(
        order_id=order.id,
        user_id=order.user_id,
        total=Money(amount=order.total_amount, currency=order.currency),
        items=[OrderedQuantity(sku=line.sku, quantity=line.quantity) for line in order.lines],
        payment_token=order.payment_token,
        payment_id=order.payment_id,
        stock_committed=stock_committed((change.status, change.reason) for change in order.history),
    )


def _locked_facts(order: repository.LockedOrder) -> OrderFacts:
    return OrderFacts(
        order_id=order.id,
        user_id=order.user_id,
        total=Money(amount=order.total_amount, currency=order.currency),
        items=[
            OrderedQuantity(sku=sku, quantity=quantity)
            for sku, quantity in zip(order.skus, order.quantities, strict=True)
        ],
        payment_token=order.payment_token,
        payment_id=order.payment_id,
        stock_committed=order.stock_committed,
    )


def _payment_requested(order: Order) -> PaymentRequested:
    assert order.payment_token is not None
    return PaymentRequested(
        order_id=order.id,
        user_id=order.user_id,
        amount=Money(amount=order.total_amount, currency=order.currency),
        payment_token=order.payment_token,
    )


def _refund_requested(order: Order) -> RefundRequested:
    """The refund request the order made on its move to ``refund_pending``, again. An order
    that waited for its refund before the amount was kept asks for its total (payments
    refunds what it captured whatever a request says)."""
    if order.refund_amount is not None and order.refund_currency is not None:
        amount = Money(amount=order.refund_amount, currency=order.refund_currency)
    else:
        amount = Money(amount=order.total_amount, currency=order.currency)
    return refund_request(order_id=order.id, payment_id=order.payment_id, amount=amount)


async def _emit(
    session: AsyncSession, payloads: Sequence[EventPayload], *, cause: Envelope | None
) -> None:
    """Write events to the outbox in the caller's transaction (published by the relay)."""
    await outbox.add_many(session, _events(payloads, cause=cause))


def _events(payloads: Sequence[EventPayload], *, cause: Envelope | None) -> list[Envelope]:
    """The events to write: follow-ups of ``cause``, or caused by the current request."""
    if cause is not None:
        return [cause.caused(payload) for payload in payloads]
    return [Envelope.new(payload, causation_id=current_request_id()) for payload in payloads]


# -- representations -------------------------------------------------------------------------


def to_out(order: Order) -> OrderOut:
    return OrderOut(**_fields(order))


def to_detail(order: Order | NewOrder) -> OrderDetail:
    history = [
        StatusChangeOut(status=change.status, reason=change.reason, at=change.at)
        for change in order.history
    ]
    return OrderDetail(**_fields(order), status_history=history)


def _fields(order: Order | NewOrder) -> dict[str, Any]:
    def money(amount: int) -> Money:
        return Money(amount=amount, currency=order.currency)

    shipment = (
        ShipmentOut(carrier=order.carrier, tracking_number=order.tracking_number)
        if order.carrier is not None and order.tracking_number is not None
        else None
    )
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "items": [
            LineOut(
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price=money(line.unit_price_amount),
                line_total=money(line.unit_price_amount * line.quantity),
            )
            for line in order.lines
        ],
        "total": money(order.total_amount),
        "shipping_address": AddressOut.model_validate(order.shipping_address),
        "shipment": shipment,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }
