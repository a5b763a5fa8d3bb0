"""Prometheus metrics of the order saga (default registry, served by the worker's ``/metrics``)."""

from __future__ import annotations

import time
import uuid

from prometheus_client import Counter, Histogram

from shared.ids import unix_seconds_of

PAYMENT_AMOUNT_MISMATCHES = Counter(
    "orders_payment_amount_mismatches_total",
    "Successful charges whose amount or currency was not the order's total: never confirmed, "
    "refunded. Any increase needs a look.",
)
REFUNDS_REQUESTED_AGAIN = Counter(
    "orders_refunds_requested_again_total",
    "Refunds requested again by the sweeper for orders left refund_pending (a refund still "
    "owed by the provider, or a payment_refunded lost on its way). A steady rise needs a look.",
)
SHIPPED_WITHOUT_STOCK = Counter(
    "orders_shipped_without_stock_total",
    "Orders shipped or delivered whose stock inventory then reported it could not commit "
    "(a confirmation held up past the reservation's expiry while the unit was sold again): "
    "on hand counts goods that left. Each needs a stock adjustment.",
)
PLACED_TO_CONFIRMED = Histogram(
    "orders_placed_to_confirmed_seconds",
    "Time from an order placed to the saga confirming it (stock reserved and payment "
    "captured). The SLO reads the 2 s bucket (docs/operations.md).",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)


def observe_confirmation(order_id: uuid.UUID) -> None:
    """Count an order confirmed now. Its id tells when it was placed (``shared.ids``: a
    time-ordered UUID made as the order was), so the saga's hot path reads no column more."""
    PLACED_TO_CONFIRMED.observe(max(time.time() - unix_seconds_of(order_id), 0.0))
