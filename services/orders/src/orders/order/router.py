"""HTTP routes of orders: parse, call placement, reading or actions, answer. No SQL here."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from starlette.responses import Response

from orders.deps import EngineDep, SessionDep, SettingsDep
from orders.order import actions, placement, reading
from orders.order.schemas import NoFields, OrderDetail, OrderPage, PlaceOrder, Shipment
from orders.saga import OrderStatus
from shared.auth import AdminDep, CustomerDep, PrincipalDep
from shared.cursors import CursorQuery, LimitQuery
from shared.openapi import problem_responses

PREFIX = "/api/v1/orders"

# Every route needs a valid token and reads the database (503 while it is out).
router = APIRouter(prefix=PREFIX, tags=["orders"], responses=problem_responses(401, 503))

# Another customer's order answers exactly like a missing one.
_NOT_FOUND = (404, "No such order, or not the caller's.")
_ILLEGAL = (409, "The order's status does not allow this.")


def _location(order_id: uuid.UUID) -> str:
    return f"{PREFIX}/{order_id}"


@router.post(
    "",
    status_code=202,
    response_model=OrderDetail,
    responses=problem_responses(
        (400, "Idempotency-Key missing or malformed, or a body that cannot be read."),
        (403, "Only customers place orders."),
        (409, "The first request with this Idempotency-Key is still in progress."),
        413,
        (422, "Invalid body, a sku not for sale, or an Idempotency-Key reused for another body."),
    ),
    summary="Place an order (Idempotency-Key required)",
)
async def place_order(
    body: PlaceOrder,
    principal: CustomerDep,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    placed = await placement.place_order(
        engine=engine,
        settings=settings,
        principal=principal,
        idempotency_key=idempotency_key,
        request=body,
    )
    headers = {"Location": _location(placed.order_id)}
    if placed.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(placed.body, status_code=placed.status_code, headers=headers)


@router.get(
    "",
    response_model=OrderPage,
    responses=problem_responses(400),
    summary="List orders (own; an admin sees all)",
)
async def list_orders(
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
    status: OrderStatus | None = None,
) -> OrderPage:
    return await reading.list_orders(
        session=session,
        cursors=settings.cursor_codec,
        principal=principal,
        status=status,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/{order_id}",
    response_model=OrderDetail,
    responses=problem_responses(_NOT_FOUND),
    summary="One order with its history",
)
async def get_order(
    order_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> OrderDetail:
    return await reading.get_order(session=session, principal=principal, order_id=order_id)


@router.post(
    "/{order_id}/cancel",
    response_model=OrderDetail,
    responses=problem_responses(_NOT_FOUND, (409, "Already shipped, delivered or closed.")),
    summary="Cancel (refund if paid)",
)
async def cancel_order(
    order_id: uuid.UUID,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    body: NoFields | None = None,
) -> OrderDetail:
    return await actions.cancel_order(
        session=session, settings=settings, principal=principal, order_id=order_id
    )


@router.post(
    "/{order_id}/ship",
    response_model=OrderDetail,
    responses=problem_responses(403, _NOT_FOUND, _ILLEGAL, 413),
    summary="Mark shipped (admin)",
)
async def ship_order(
    order_id: uuid.UUID,
    body: Shipment,
    principal: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
) -> OrderDetail:
    return await actions.ship_order(
        session=session, settings=settings, principal=principal, order_id=order_id, shipment=body
    )


@router.post(
    "/{order_id}/deliver",
    response_model=OrderDetail,
    responses=problem_responses(403, _NOT_FOUND, _ILLEGAL),
    summary="Mark delivered (admin)",
)
async def deliver_order(
    order_id: uuid.UUID,
    principal: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    body: NoFields | None = None,
) -> OrderDetail:
    return await actions.deliver_order(
        session=session, settings=settings, principal=principal, order_id=order_id
    )
