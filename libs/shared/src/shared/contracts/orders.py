"""Events the orders service produces."""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.base import EventPayload, contract
from shared.contracts.money import Money


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    sku: str
    quantity: int = Field(gt=0)
    unit_price: Money


class OrderedQuantity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    sku: str
    quantity: int = Field(gt=0)


@contract("orders.order_created", 1)
class OrderCreated(EventPayload):
    order_id: uuid.UUID
    user_id: uuid.UUID
    items: list[OrderLine]
    total: Money


@contract("orders.payment_requested", 1)
class PaymentRequested(EventPayload):
    order_id: uuid.UUID
    user_id: uuid.UUID
    amount: Money
    payment_token: str

    redacted_on_send: ClassVar[frozenset[str]] = frozenset({"payment_token"})


@contract("orders.order_confirmed", 1)
class OrderConfirmed(EventPayload):
    """Paid: inventory commits the reservation (on hand decreases)."""

    order_id: uuid.UUID
    items: list[OrderedQuantity]


@contract("orders.order_cancelled", 1)
class OrderCancelled(EventPayload):
    """Inventory releases the reservation, or returns committed quantities to on hand."""

    order_id: uuid.UUID
    reason: str
    items: list[OrderedQuantity]


@contract("orders.refund_requested", 1)
class RefundRequested(EventPayload):
    order_id: uuid.UUID
    payment_id: uuid.UUID
    amount: Money
