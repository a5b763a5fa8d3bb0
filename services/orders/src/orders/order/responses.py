"""The representations answered to clients: an order as read, and one just placed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orders.order.models import Order, OrderLine, PricedLine
from orders.order.schemas import (
    AddressOut,
    LineOut,
    OrderDetail,
    OrderOut,
    ShipmentOut,
    StatusChangeOut,
)
from orders.saga import HistoryEntry, OrderState
from shared.contracts import Money


def to_out(order: Order) -> OrderOut:
    return OrderOut(**_fields(order))


def to_detail(order: Order) -> OrderDetail:
    history = [
        StatusChangeOut(status=change.status, reason=change.reason, at=change.at)
        for change in order.history
    ]
    return OrderDetail(**_fields(order), status_history=history)


def placed_detail(
    order: OrderState,
    *,
    lines: Iterable[PricedLine],
    shipping_address: dict[str, Any],
    placed_as: HistoryEntry,
) -> OrderDetail:
    """An order just placed, exactly as a read of it will answer it."""
    return OrderDetail(
        id=order.id,
        user_id=order.user_id,
        status=order.status,
        items=_lines(lines, currency=order.total.currency),
        total=order.total,
        shipping_address=AddressOut.model_validate(shipping_address),
        shipment=None,  # not shipped yet
        created_at=placed_as.at,
        updated_at=placed_as.at,
        status_history=[
            StatusChangeOut(status=placed_as.status, reason=placed_as.reason, at=placed_as.at)
        ],
    )


def _fields(order: Order) -> dict[str, Any]:
    shipment = (
        ShipmentOut(carrier=order.carrier, tracking_number=order.tracking_number)
        if order.carrier is not None and order.tracking_number is not None
        else None
    )
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "items": _lines(order.lines, currency=order.currency),
        "total": Money(amount=order.total_amount, currency=order.currency),
        "shipping_address": AddressOut.model_validate(order.shipping_address),
        "shipment": shipment,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def _lines(lines: Iterable[OrderLine | PricedLine], *, currency: str) -> list[LineOut]:
    return [
        LineOut(
            sku=line.sku,
            name=line.name,
            quantity=line.quantity,
            unit_price=Money(amount=line.unit_price_amount, currency=currency),
            line_total=Money(amount=line.unit_price_amount * line.quantity, currency=currency),
        )
        for line in lines
    ]
