"""Events the inventory service produces."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.base import EventPayload, contract
from shared.contracts.money import Money


class ReservedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    sku: str
    quantity: int = Field(gt=0)


@contract("inventory.product_upserted", 1)
class ProductUpserted(EventPayload):
    """A product was created or changed; orders keeps a local price replica from these."""

    sku: str
    name: str
    price: Money
    active: bool


@contract("inventory.stock_reserved", 1)
class StockReserved(EventPayload):
    """Every line of the order is reserved."""

    order_id: uuid.UUID
    items: list[ReservedLine]


@contract("inventory.stock_reservation_failed", 1)
class StockReservationFailed(EventPayload):
    """Nothing was reserved (all or nothing); ``skus`` lists the lines that fell short."""

    order_id: uuid.UUID
    reason: str
    skus: list[str]


@contract("inventory.reservation_expired", 1)
class ReservationExpired(EventPayload):
    """The reservation outlived its TTL and was released."""

    order_id: uuid.UUID


@contract("inventory.stock_low", 1)
class StockLow(EventPayload):
    """Available stock fell to or under the reorder point."""

    sku: str
    available: int
    reorder_point: int
