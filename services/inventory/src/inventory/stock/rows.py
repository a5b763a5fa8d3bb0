"""Stock rows as the rules and the routes see them, and reservation lines with theirs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class StockLevel:
    """A stock row with what the rules need of its product.

    When the row is locked for the transaction, the rules change this in place and the write
    statement records the change, so it is the row's state as the transaction leaves it.
    """

    sku: str
    on_hand: int
    reserved: int
    low_stock_alerted: bool
    active: bool
    reorder_point: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> StockLevel:
        """From a row carrying the six columns under their own names, as every locking
        statement returns them."""
        return cls(
            sku=row["sku"],
            on_hand=row["on_hand"],
            reserved=row["reserved"],
            low_stock_alerted=row["low_stock_alerted"],
            active=row["active"],
            reorder_point=row["reorder_point"],
        )


@dataclass(frozen=True)
class LockedLine:
    """A reservation line with its stock row, locked; lines of one sku share the row."""

    order_id: uuid.UUID
    quantity: int
    stock: StockLevel
