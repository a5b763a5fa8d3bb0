"""GET /orders and GET /orders/{id}: a customer's own orders, every order for an admin."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from orders.order import repository
from orders.order.exceptions import OrderNotFound
from orders.order.responses import to_detail, to_out
from orders.order.schemas import OrderDetail, OrderPage
from orders.saga import OrderStatus
from shared.auth import Principal
from shared.cursors import CursorCodec

ORDERS_CURSOR = "orders"


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
    before = cursors.after_id(ORDERS_CURSOR, cursor)
    async with session.begin():
        rows = await repository.page(
            session=session,
            user_id=None if principal.is_admin else principal.user_id,
            status=status,
            before=before,
            limit=limit,
        )
    visible, next_cursor = cursors.page(
        ORDERS_CURSOR, rows, limit=limit, position=lambda order: order.id
    )
    return OrderPage(items=[to_out(order) for order in visible], next_cursor=next_cursor)


async def get_order(
    *, session: AsyncSession, principal: Principal, order_id: uuid.UUID
) -> OrderDetail:
    async with session.begin():
        order = await repository.get(session=session, order_id=order_id)
        if order is None or not visible_to(principal, owner=order.user_id):
            raise OrderNotFound("No such order.")
    return to_detail(order)


def visible_to(principal: Principal, *, owner: uuid.UUID) -> bool:
    # Another user's order answers exactly like a missing one (no existence oracle).
    return principal.is_admin or owner == principal.user_id
