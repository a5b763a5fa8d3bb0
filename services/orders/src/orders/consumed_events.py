"""The events orders reads and the fields of each it relies on.

Checked against the producers' published schemas by ``tests/contract``: a producer cannot
drop or loosen one of these unnoticed. A dotted path walks into objects and list items.
"""

CONSUMED_EVENTS: dict[str, frozenset[str]] = {
    "inventory.product_upserted": frozenset(
        {"sku", "name", "price.amount", "price.currency", "active"}
    ),
    "inventory.stock_reserved": frozenset({"order_id"}),
    "inventory.stock_reservation_failed": frozenset({"order_id", "reason"}),
    "inventory.reservation_expired": frozenset({"order_id"}),
    "inventory.stock_commit_failed": frozenset({"order_id", "reason", "skus"}),
    "payments.payment_succeeded": frozenset(
        {"order_id", "payment_id", "amount.amount", "amount.currency"}
    ),
    "payments.payment_failed": frozenset({"order_id", "reason"}),
    "payments.payment_refunded": frozenset({"order_id"}),
}
