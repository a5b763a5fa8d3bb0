"""Pure rules, no I/O: the once-per-crossing low-stock alarm, the reservation refusals."""

from __future__ import annotations

from inventory.stock.rows import StockLevel
from inventory.stock.rules import FailureReason, low_stock_events, shortfall


def level(sku: str, on_hand: int, *, active: bool = True) -> StockLevel:
    return StockLevel(sku, on_hand, 0, low_stock_alerted=False, active=active, reorder_point=3)


def test_the_low_stock_alarm_fires_once_per_crossing() -> None:
    row = level("SKU-1", 10)
    fired = []
    for on_hand in [5, 3, 2, 1, 8, 3, 0]:
        row.on_hand = on_hand
        fired += [event.available for event in low_stock_events([row])]
    assert fired == [3, 3]


def test_a_refusal_names_the_most_permanent_reason_and_every_sku_it_applies_to() -> None:
    rows = [level("A", 1), level("B", 0), level("C", 5, active=False)]
    wanted = {"A": 2, "B": 1, "C": 1, "X": 1, "Y": 1}
    assert shortfall(wanted, rows) == (FailureReason.UNKNOWN_SKU, ["X", "Y"])
    del wanted["X"], wanted["Y"]
    assert shortfall(wanted, rows) == (FailureReason.INACTIVE, ["C"])
    del wanted["C"]
    assert shortfall(wanted, rows) == (FailureReason.OUT_OF_STOCK, ["A", "B"])
    assert shortfall({"A": 1}, rows) is None
