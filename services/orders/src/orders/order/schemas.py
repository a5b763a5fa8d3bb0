"""Request and response bodies of the orders API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
)

from orders.order.countries import ISO_COUNTRY_CODES
from orders.saga import OrderStatus
from shared.contracts import Money
from shared.text import Encodable

MAX_LINES = 50
MAX_QUANTITY = 1000

Text100 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Sku = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class Input(BaseModel):
    # A client can never set status, totals, prices or owners: any field not declared is 422.
    model_config = ConfigDict(extra="forbid")


class LineIn(Input):
    sku: Sku
    quantity: int = Field(ge=1, le=MAX_QUANTITY, strict=True)


class PaymentIn(Input):
    # SecretStr: never shown by repr, so no log line or error can carry it. Encodable: the
    # request's fingerprint encodes it, and a SecretStr lets a lone surrogate through.
    token: Annotated[SecretStr, Encodable] = Field(min_length=1, max_length=255)


class ShippingAddress(Input):
    name: Text200
    line1: Text200
    line2: Text200 | None = None
    city: Text100
    postal_code: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
    ]
    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. US.")

    @field_validator("country")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        code = value.strip().upper()
        if code not in ISO_COUNTRY_CODES:
            raise ValueError("must be an ISO 3166-1 alpha-2 country code")
        return code


class PlaceOrder(Input):
    items: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    payment: PaymentIn
    shipping_address: ShippingAddress

    @field_validator("items")
    @classmethod
    def _distinct_skus(cls, items: list[LineIn]) -> list[LineIn]:
        skus = [line.sku for line in items]
        if len(set(skus)) != len(skus):
            raise ValueError("each sku may appear on one line only")
        return items


class Shipment(Input):
    carrier: Text100
    tracking_number: Text100


class NoFields(Input):
    """The body of an action that takes none (cancel, deliver): left out, or ``{}``. A field
    sent anyway (``{"status": "confirmed"}``) is refused, never silently ignored."""


class LineOut(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: Money
    line_total: Money


class StatusChangeOut(BaseModel):
    status: OrderStatus
    reason: str
    at: datetime


class ShipmentOut(BaseModel):
    carrier: str
    tracking_number: str


class AddressOut(BaseModel):
    name: str
    line1: str
    line2: str | None = None
    city: str
    postal_code: str
    country: str


class OrderOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    status: OrderStatus
    items: list[LineOut]
    total: Money
    shipping_address: AddressOut
    shipment: ShipmentOut | None
    created_at: datetime
    updated_at: datetime


class OrderDetail(OrderOut):
    status_history: list[StatusChangeOut]


class OrderPage(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None
