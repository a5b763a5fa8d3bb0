"""The events payments reads and the fields of each it relies on.

Checked against the producers' published schemas by ``tests/contract``: a producer cannot
drop or loosen one of these unnoticed. A dotted path walks into objects and list items.
"""

CONSUMED_EVENTS: dict[str, frozenset[str]] = {
    "orders.payment_requested": frozenset(
        {"order_id", "user_id", "amount.amount", "amount.currency", "payment_token"}
    ),
    "orders.refund_requested": frozenset(
        {"order_id", "payment_id", "amount.amount", "amount.currency"}
    ),
}
