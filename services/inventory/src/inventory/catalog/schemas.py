"""Catalog requests and responses. Input models forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from inventory.media.schemas import ImageOut
from inventory.products.models import SKU_PATTERN
from inventory.stock.schemas import MAX_QUANTITY

Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
ProductName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5000)]
ReorderPoint = Annotated[StrictInt, Field(ge=0, le=MAX_QUANTITY)]


class MoneyIn(BaseModel):
    """Integer minor units and an ISO 4217 code; floats and strings are refused."""

    model_config = ConfigDict(extra="forbid")

    amount: Annotated[StrictInt, Field(ge=0, le=10**12)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class MoneyOut(BaseModel):
    amount: int
    currency: str


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: ProductName
    description: Description | None = None
    price: MoneyIn
    initial_stock: Annotated[StrictInt, Field(ge=0, le=MAX_QUANTITY)] = 0
    reorder_point: ReorderPoint = 0


class ProductUpdate(BaseModel):
    """Partial update: only the fields sent change; ``description`` alone may be null."""

    model_config = ConfigDict(extra="forbid")

    name: ProductName | None = None
    description: Description | None = None
    price: MoneyIn | None = None
    active: StrictBool | None = None
    reorder_point: ReorderPoint | None = None

    @model_validator(mode="after")
    def _only_description_may_be_null(self) -> ProductUpdate:
        # Omitting a field keeps it; sending null would erase a required one.
        nulled = [
            name
            for name in self.model_fields_set
            if name != "description" and getattr(self, name) is None
        ]
        if nulled:
            raise ValueError(f"may not be null: {', '.join(sorted(nulled))}")
        return self


class ProductOut(BaseModel):
    sku: str
    name: str
    description: str | None
    price: MoneyOut
    active: bool
    available: int
    images: list[ImageOut] = []  # in upload order
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None
