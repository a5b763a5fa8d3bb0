"""Metrics of payments' own work, on the worker's ``/metrics``: refunds and re-announcements."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

REFUND_ATTEMPTS = Counter(
    "payments_refund_attempts_total",
    "Refunds asked of the provider, by who asked (request, reconciler) and what came of it "
    "(refunded, owed: to be retried, refused: never to be made).",
    ["source", "outcome"],
)
REFUNDS_OWED = Gauge(
    "payments_refunds_owed",
    "Refunds owed (the provider could not make them yet), as the refund reconciler last saw.",
)
REFUND_OLDEST_OWED_AGE = Gauge(
    "payments_refund_oldest_owed_age_seconds",
    "Age of the oldest refund still owed (0 when none is), as the refund reconciler last saw.",
)
REFUNDS_REFUSED = Gauge(
    "payments_refunds_refused",
    "Refunds the provider refused for good: each needs an operator.",
)
OUTCOMES_REANNOUNCED = Counter(
    "payments_outcomes_reannounced_total",
    "Outcomes of payments already settled (or refunded), announced again for a repeated "
    "payment or refund request.",
    ["event_type"],
)
