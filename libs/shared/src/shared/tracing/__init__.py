"""OpenTelemetry traces, set up from the standard ``OTEL_*`` variables alone (docs/tracing.md).

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set
or ``OTEL_TRACES_EXPORTER`` says ``otlp``. Then ``configure_tracing`` (called once by every
process at start) installs the SDK, an OTLP/HTTP exporter and the asyncpg and Redis
instrumentations; ``shared.tracing.http`` puts an app in server spans (it imports FastAPI,
so this package does not: ``propagation`` must be importable first); ``messaging`` carries
the context through the outbox and RabbitMQ; ``shutdown_tracing`` exports what is left when
a server stops. Off, nothing is installed and every helper returns at its first test.
"""

from shared.tracing.setup import (
    configure_tracing,
    current_trace_ids,
    shutdown_tracing,
    tracer,
    tracing_enabled,
    tracing_wanted,
)
from shared.tracing.unsampled import sampled, untraced

__all__ = [
    "configure_tracing",
    "current_trace_ids",
    "sampled",
    "shutdown_tracing",
    "tracer",
    "tracing_enabled",
    "tracing_wanted",
    "untraced",
]
