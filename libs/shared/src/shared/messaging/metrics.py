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
EVENTS_REDELIVERED = Counter(
    "messaging_events_redelivered_total",
    "Deliveries the broker marked as redelivered (a failed handler's nack, a lost ack, a "
    "worker gone with messages in flight), by queue.",
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

# Read from the broker by each running consumer (a passive declaration, every few seconds):
# every replica of a worker reports the same value, so take the max across them, not the sum.
QUEUE_MESSAGES = Gauge(
    "messaging_queue_messages",
    "Messages ready in a consuming queue (not counting those delivered and not yet acked), "
    "by queue.",
    ["queue"],
)
QUEUE_CONSUMERS = Gauge(
    "messaging_queue_consumers",
    "Consumers attached to a consuming queue, all replicas together, by queue.",
    ["queue"],
)
DEAD_LETTER_MESSAGES = Gauge(
    "messaging_dead_letter_messages",
    "Messages in a consuming queue's dead-letter queue, by (source) queue: each needs an "
    "operator (docs/messaging.md).",
    ["queue"],
)
REFUSED_MESSAGES = Gauge(
    "messaging_refused_messages",
    "Envelopes a consuming queue's consumer refused for their provenance, waiting in its "
    "refused queue, by (source) queue: a forgery or a misconfigured producer "
    "(docs/deployment.md).",
    ["queue"],
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
