"""Prometheus metrics of the order saga (default registry, served by the worker's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

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
