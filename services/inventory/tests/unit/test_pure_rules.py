"""Pure rules, no I/O: time-ordered ids, the once-per-crossing low-stock alarm."""

from __future__ import annotations

from inventory.stock.models import StockItem
from inventory.stock.repository import LockedStock
from inventory.stock.service import low_stock_events


def test_the_low_stock_alarm_fires_once_per_crossing() -> None:
    item = StockItem(sku="SKU-1", on_hand=10, reserved=0, low_stock_alerted=False)
    row = LockedStock(item=item, active=True, reorder_point=3)
    fired = []
    for on_hand in [5, 3, 2, 1, 8, 3, 0]:
        item.on_hand = on_hand
        fired += [event.available for event in low_stock_events([row])]
    assert fired == [3, 3]
