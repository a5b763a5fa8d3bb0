"""Shared building blocks of the commerce platform: settings, database, errors, ASGI
middleware, logging, metrics and health. Nothing in here knows about a domain."""

from shared.tracing.propagation import replace_unusable_propagators

# Before anything imports FastAPI or an instrumentation: both import opentelemetry.propagate,
# which raises on an OTEL_PROPAGATORS value naming a propagator that is not installed.
replace_unusable_propagators()
