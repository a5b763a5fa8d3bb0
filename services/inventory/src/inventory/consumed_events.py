"""The events inventory reads and the fields of each it relies on.

Checked against the producers' published schemas by ``tests/contract``: a producer cannot
drop or loosen one of these unnoticed. A dotted path walks into objects and list items.
"""

CONSUMED_EVENTS: dict[str, frozenset[str]] = {
    "orders.order_created": frozenset({"order_id", "items.sku", "items.quantity"}),
    "orders.order_confirmed": frozenset({"order_id"}),
    "orders.order_cancelled": frozenset({"order_id"}),
    "inventory.stock_low": frozenset({"sku", "available", "reorder_point"}),
}
