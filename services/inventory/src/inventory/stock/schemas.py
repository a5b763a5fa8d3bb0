"""Stock requests and responses. Input models forbid unknown fields."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, field_validator

MAX_QUANTITY = 1_000_000_000  # far above any real stock, far below bigint overflow


class StockAdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delta: Annotated[StrictInt, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, delta: int) -> int:
        if delta == 0:
            raise ValueError("a stock adjustment must change the stock")
        return delta


class StockOut(BaseModel):
    sku: str
    on_hand: int
    reserved: int
    available: int
    reorder_point: int


class StockPage(BaseModel):
    items: list[StockOut]
    next_cursor: str | None
