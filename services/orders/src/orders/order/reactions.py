"""How orders react to inventory's and payments' events: each is a ``saga.Step``.

They run inside the consumer's transaction (the inbox key commits with them), so they never
commit. A late, repeated or out-of-order event that the saga refuses is logged and
acknowledged: it never moves an order backwards.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from orders.config import OrdersSettings
from orders.order import metrics, repository
from orders.order.recording import envelopes, record
from orders.order.repository import Change
from orders.saga import OrderState, OrderStatus, Outcome, Step, Trigger, apply
from shared.messaging import Envelope

logger = logging.getLogger(__name__)

# Statuses in which the goods have left: a stock commit that fails then cannot be undone.
GOODS_LEFT = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED})


@dataclass(frozen=True)
class Reaction:
    """One event's claim on an order: the event, and the step it asks of the order."""

    event: Envelope
    order_id: uuid.UUID
    step: Step


async def react_all(
    *, session: AsyncSession, settings: OrdersSettings, reactions: Sequence[Reaction]
) -> list[bool]:
    """Apply events to their orders, in turn; per reaction, False if it was skipped.

    A few statements whatever the number of events: one locks and reads every order named,
    the saga runs here, one writes every order's final state and history entries, then the
    outbox write. Two events for one order apply in turn, the second seeing what the first
    left.
    """
    orders = await repository.lock(
        session=session, order_ids={reaction.order_id for reaction in reactions}
    )
    changes: list[Change] = []
    events: list[Envelope] = []
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
        outcome = apply(order, reaction.step, settings)
        _log(order, reaction, outcome)
        events.extend(envelopes(outcome.events, cause=reaction.event))
        if outcome.state is not order:
            orders[order.id] = outcome.state
            changes.append(Change(outcome.state, outcome.entry))
            confirmed = OrderStatus.CONFIRMED
            if outcome.state.status is confirmed and order.status is not confirmed:
                # Inside the consumer's transaction: a batch that fails and is retried
                # counts its confirmations again, rare enough not to move a percentile.
                metrics.observe_confirmation(order.id)
        moved.append(not outcome.refused)
    await record(session, changes=changes, events=events)
    return moved


def _log(order: OrderState, reaction: Reaction, outcome: Outcome) -> None:
    event, step = reaction.event, reaction.step
    if outcome.trigger is Trigger.PAYMENT_AMOUNT_MISMATCH and step.charged is not None:
        metrics.PAYMENT_AMOUNT_MISMATCHES.inc()
        logger.warning(
            "payment %s of order %s charged %d %s but the order totals %d %s: "
            "not confirmed, refunding what was charged",
            step.payment_id,
            order.id,
            step.charged.amount,
            step.charged.currency,
            order.total.amount,
            order.total.currency,
        )
    if outcome.trigger is Trigger.STOCK_COMMIT_FAILED:
        logger.warning(
            "order %s (%s): inventory could not commit its stock (%s); refunding",
            order.id,
            order.status.value,
            step.reason,
        )
    if step.trigger is Trigger.STOCK_RESERVED and outcome.trigger is Trigger.RESERVATION_EXPIRED:
        logger.warning(
            "order %s: stock reserved until %s arrived too close to that to ask for payment; "
            "cancelling and releasing it",
            order.id,
            step.reservation_expires_at,
        )
    if (
        outcome.refused
        and step.trigger is Trigger.STOCK_COMMIT_FAILED
        and order.status in GOODS_LEFT
    ):
        # The goods left while inventory still counts them: nothing here can set that right.
        metrics.SHIPPED_WITHOUT_STOCK.inc()
        logger.error(
            "order %s is %s but inventory could not commit its stock (%s): on hand counts "
            "units that left; adjust the stock of %s",
            order.id,
            order.status.value,
            step.reason,
            ", ".join(sorted({item.sku for item in order.items})),
        )
    elif outcome.refused and outcome.events and step.trigger is Trigger.RESERVATION_EXPIRED:
        logger.warning(
            "order %s is %s but inventory expired its reservation: its confirmation never "
            "reached inventory; sending it again",
            order.id,
            order.status.value,
        )
    if outcome.refused:
        logger.info(
            "%s %s ignored: order %s is %s%s",
            event.type,
            event.id,
            order.id,
            order.status.value,
            " (compensating)" if outcome.events else "",
        )
