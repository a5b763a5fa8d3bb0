"""Pure rules, no I/O: cursors, time-ordered ids, the once-per-crossing low-stock alarm."""

from __future__ import annotations

import pytest

from inventory.pagination import InvalidCursor, decode_cursor, encode_cursor
from inventory.stock.models import StockItem
from inventory.stock.repository import LockedStock
from inventory.stock.service import low_stock_events


def test_a_cursor_round_trips_and_is_bound_to_its_secret_and_list() -> None:
    cursor = encode_cursor(secret="s1", kind="products", after="SKU-9")
    assert decode_cursor(secret="s1", kind="products", cursor=cursor) == "SKU-9"
    with pytest.raises(InvalidCursor):
        decode_cursor(secret="s2", kind="products", cursor=cursor)
    with pytest.raises(InvalidCursor):
        decode_cursor(secret="s1", kind="low-stock", cursor=cursor)


def test_the_low_stock_alarm_fires_once_per_crossing() -> None:
    item = StockItem(sku="SKU-1", on_hand=10, reserved=0, low_stock_alerted=False)
    row = LockedStock(item=item, active=True, reorder_point=3)
    fired = []
    for on_hand in [5, 3, 2, 1, 8, 3, 0]:
        item.on_hand = on_hand
        fired += [event.available for event in low_stock_events([row])]
    assert fired == [3, 3]
