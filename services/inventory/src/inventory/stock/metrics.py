"""Prometheus metrics of the order saga's stock moves (default registry, served by ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

LAPSED_CONFIRMATIONS = Counter(
    "inventory_lapsed_confirmations_total",
    "Confirmations that met a reservation already expired, by outcome: the stock taken "
    "again (retaken) or gone (commit_failed: the order is refunded).",
    ["outcome"],
)
RETAKEN = LAPSED_CONFIRMATIONS.labels("retaken")
COMMIT_FAILED = LAPSED_CONFIRMATIONS.labels("commit_failed")
