"""Prometheus metrics of the messaging layer (default registry, served by ``/metrics``).

Queue labels are consuming purposes without the namespace prefix, so series stay bounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "messaging_events_published_total",
    "Events published and confirmed by the broker, by event type.",
    ["event_type"],
)
PUBLISH_FAILURES = Counter(
    "messaging_publish_failures_total",
    "Outbox rows whose publication failed (broker away, nack, unroutable), by event type.",
    ["event_type"],
)
OUTBOX_BACKLOG = Gauge(
    "messaging_outbox_backlog",
    "Outbox rows not yet confirmed by the broker, by outbox table.",
    ["table"],
)
OUTBOX_OLDEST_UNSENT_AGE = Gauge(
    "messaging_outbox_oldest_unsent_age_seconds",
    "Age of the oldest unsent outbox row (0 when none), by outbox table.",
    ["table"],
)
EVENTS_CONSUMED = Counter(
    "messaging_events_consumed_total",
    "Events handled and acknowledged, by queue.",
    ["queue"],
)
EVENTS_DUPLICATE = Counter(
    "messaging_events_duplicate_total",
    "Events acknowledged without running the handler (already processed), by queue.",
    ["queue"],
)
EVENTS_FAILED = Counter(
    "messaging_events_failed_total",
    "Handler failures (the message is returned for redelivery), by queue.",
    ["queue"],
)
EVENTS_DEAD_LETTERED = Counter(
    "messaging_events_dead_lettered_total",
    "Messages sent to the dead-letter queue, by queue and reason.",
    ["queue", "reason"],
)
HANDLER_LATENCY = Histogram(
    "messaging_handler_duration_seconds",
    "Time to handle one event, inbox write and commit included, by queue.",
    ["queue"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
# The worker's periodic jobs (shared.messaging.jobs): sweepers, reconcilers, inbox pruning.
JOB_RUNS = Counter(
    "worker_job_runs_total",
    "Runs of a worker's periodic job, by job and outcome (done, failed).",
    ["job", "outcome"],
)
JOB_DURATION = Histogram(
    "worker_job_duration_seconds",
    "Time one run of a worker's periodic job took, by job.",
    ["job"],
    buckets=(0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0),
)
