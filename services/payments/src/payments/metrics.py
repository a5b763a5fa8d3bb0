"""Metrics of payments' own work, on the worker's ``/metrics``: refunds, re-announcements and
the provider's calls."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
PROVIDER_REQUESTS = Counter(
    "payments_provider_requests_total",
    "Calls made to the payment provider (each retry counts), by operation (charge, refund, "
    "find_charge).",
    ["operation"],
)
PROVIDER_ERRORS = Counter(
    "payments_provider_errors_total",
    "Provider calls that raised, by operation and error: unavailable (transient, asked "
    "again), refused (a refund never to be made) or unexpected (anything else).",
    ["operation", "error"],
)
PROVIDER_LATENCY = Histogram(
    "payments_provider_request_duration_seconds",
    "Time one provider call took, answered or failed, by operation.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
