"""Events the inventory service produces."""

from __future__ import annotations

import uuid
from datetime import datetime

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
    """Every line of the order is reserved, until ``expires_at``.

    ``expires_at`` (RFC 3339, UTC) is when the reservation lapses unless the order is
    confirmed; orders stops asking for payment well before it. Optional for compatibility
    with producers that predate it: a reader without it knows no deadline.
    """

    order_id: uuid.UUID
    items: list[ReservedLine]
    expires_at: datetime | None = None


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


@contract("inventory.stock_commit_failed", 1)
class StockCommitFailed(EventPayload):
    """A confirmation met a lapsed reservation and the stock could not be taken again:
    nothing was committed; ``skus`` lists the lines that fell short."""

    order_id: uuid.UUID
    reason: str
    skus: list[str]


@contract("inventory.stock_low", 1)
class StockLow(EventPayload):
    """Available stock fell to or under the reorder point."""

    sku: str
    available: int
    reorder_point: int
