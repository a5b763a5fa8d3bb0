"""HTTP routes of orders: parse, call the service, answer. No SQL here."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from starlette.responses import Response

from orders.deps import EngineDep, SessionDep, SettingsDep
from orders.order import service
from orders.order.exceptions import ProductsUnavailable
from orders.order.schemas import OrderDetail, OrderPage, PlaceOrder, Shipment
from orders.saga import OrderStatus
from shared.auth import AdminDep, CustomerDep, PrincipalDep
from shared.errors import FieldError, problem_response

PREFIX = "/api/v1/orders"

router = APIRouter(prefix=PREFIX, tags=["orders"])


def _location(order_id: uuid.UUID) -> str:
    return f"{PREFIX}/{order_id}"


@router.post(
    "",
    status_code=202,
    response_model=OrderDetail,
    responses={400: {}, 409: {}, 422: {}},
    summary="Place an order (Idempotency-Key required)",
)
async def place_order(
    body: PlaceOrder,
    principal: CustomerDep,
    engine: EngineDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    try:
        placed = await service.place_order(
            engine=engine,
            settings=settings,
            principal=principal,
            idempotency_key=idempotency_key,
            request=body,
        )
    except ProductsUnavailable as exc:
        # A 422 that names each offending line, in the same shape as a validation error.
        return problem_response(
            exc.status,
            exc.detail,
            title=exc.title,
            type_=exc.type,
            errors=[
                FieldError(loc=["body", "items", line.index, "sku"], msg=line.reason, type=exc.type)
                for line in exc.lines
            ],
        )
    headers = {"Location": _location(placed.order_id)}
    if placed.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(placed.body, status_code=placed.status_code, headers=headers)


@router.get("", response_model=OrderPage, summary="List orders (own; an admin sees all)")
async def list_orders(
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    status: OrderStatus | None = None,
) -> OrderPage:
    return await service.list_orders(
        session=session, principal=principal, status=status, cursor=cursor, limit=limit
    )


@router.get("/{order_id}", response_model=OrderDetail, summary="One order with its history")
async def get_order(
    order_id: uuid.UUID, principal: PrincipalDep, session: SessionDep
) -> OrderDetail:
    return await service.get_order(session=session, principal=principal, order_id=order_id)


@router.post("/{order_id}/cancel", response_model=OrderDetail, summary="Cancel (refund if paid)")
async def cancel_order(
    order_id: uuid.UUID, principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> OrderDetail:
    return await service.cancel_order(
        session=session, settings=settings, principal=principal, order_id=order_id
    )


@router.post("/{order_id}/ship", response_model=OrderDetail, summary="Mark shipped (admin)")
async def ship_order(
    order_id: uuid.UUID,
    body: Shipment,
    principal: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
) -> OrderDetail:
    return await service.ship_order(
        session=session, settings=settings, principal=principal, order_id=order_id, shipment=body
    )


@router.post("/{order_id}/deliver", response_model=OrderDetail, summary="Mark delivered (admin)")
async def deliver_order(
    order_id: uuid.UUID, principal: AdminDep, session: SessionDep, settings: SettingsDep
) -> OrderDetail:
    return await service.deliver_order(
        session=session, settings=settings, principal=principal, order_id=order_id
    )
