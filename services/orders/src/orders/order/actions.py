"""What a customer or an admin asks of an order: cancel, ship, deliver.

Each is a ``saga.Step`` applied to the order under its row lock, in the request's own
transaction; a step the saga refuses is a 409 and changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orders.config import OrdersSettings
from orders.order import repository
from orders.order.exceptions import IllegalTransition, OrderNotFound
from orders.order.reading import visible_to
from orders.order.recording import envelopes, record
from orders.order.repository import Change
from orders.order.responses import to_detail
from orders.order.schemas import OrderDetail, Shipment
from orders.saga import Step, Trigger, apply
from shared.auth import Principal


async def cancel_order(
    *, session: AsyncSession, settings: OrdersSettings, principal: Principal, order_id: uuid.UUID
) -> OrderDetail:
    """Before payment: cancelled (stock released). After: refund requested. Shipped: 409."""
    reason = "cancelled_by_admin" if principal.is_admin else "cancelled_by_customer"
    step = Step(Trigger.CANCEL, reason, datetime.now(UTC))
    return await _act(
        session=session, settings=settings, principal=principal, order_id=order_id, step=step
    )


async def ship_order(
    *,
    session: AsyncSession,
    settings: OrdersSettings,
    principal: Principal,
    order_id: uuid.UUID,
    shipment: Shipment,
) -> OrderDetail:
    step = Step(
        Trigger.SHIP,
        f"shipped with {shipment.carrier}",
        datetime.now(UTC),
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
    )
    return await _act(
        session=session, settings=settings, principal=principal, order_id=order_id, step=step
    )


async def deliver_order(
    *, session: AsyncSession, settings: OrdersSettings, principal: Principal, order_id: uuid.UUID
) -> OrderDetail:
    step = Step(Trigger.DELIVER, "delivered", datetime.now(UTC))
    return await _act(
        session=session, settings=settings, principal=principal, order_id=order_id, step=step
    )


async def _act(
    *,
    session: AsyncSession,
    settings: OrdersSettings,
    principal: Principal,
    order_id: uuid.UUID,
    step: Step,
) -> OrderDetail:
    async with session.begin():
        order = (await repository.lock(session=session, order_ids=[order_id])).get(order_id)
        if order is None or not visible_to(principal, owner=order.user_id):
            raise OrderNotFound("No such order.")
        outcome = apply(order, step, settings)
        if outcome.refused:
            raise IllegalTransition(
                f"An order that is {order.status.value} cannot {step.trigger.value}."
            )
        await record(
            session,
            changes=[Change(outcome.state, outcome.entry)],
            events=envelopes(outcome.events, cause=None),
        )
        detail = await repository.get(session=session, order_id=order_id)
    if detail is None:  # locked above, in this transaction: cannot happen
        raise OrderNotFound("No such order.")
    return to_detail(detail)
