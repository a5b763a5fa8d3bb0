"""Prometheus metrics of the order saga (default registry, served by the worker's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

PAYMENT_AMOUNT_MISMATCHES = Counter(
    "orders_payment_amount_mismatches_total",
    "Successful charges whose amount or currency was not the order's total: never confirmed, "
    "refunded. Any increase needs a look.",
)
