"""The W3C trace context every hop carries: ``traceparent`` and ``tracestate`` (docs/tracing.md).

The platform's requests, outbox rows and messages carry W3C trace context whatever
``OTEL_PROPAGATORS`` says: the helpers here use the W3C propagator itself, never the global
one, which ``opentelemetry.propagate`` builds from that variable when it is imported, raising
on a name whose package is not installed (``b3``). The instrumentations and FastAPI import
that module, so ``replace_unusable_propagators`` must run before they are imported: it puts
W3C in the place of such a value, which ``configure_tracing`` then reports.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from importlib.metadata import entry_points
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, default_getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACE_CONTEXT = TraceContextTextMapPropagator()
FALLBACK_PROPAGATORS = "tracecontext"
PROPAGATOR_ENTRY_POINTS = "opentelemetry_propagator"  # where opentelemetry.propagate looks

_replaced: str | None = None


def extract(carrier: Mapping[str, Any], getter: Getter[Any] = default_getter) -> Context:
    """The trace context ``carrier``'s W3C headers hold, in an empty context; empty if none."""
    return TRACE_CONTEXT.extract(carrier, context=Context(), getter=getter)


def carrier_of(context: Context) -> dict[str, str]:
    """The W3C headers (``traceparent``, ``tracestate``) of ``context``; empty if it has none."""
    carrier: dict[str, str] = {}
    TRACE_CONTEXT.inject(carrier, context=context)
    return carrier


def replace_unusable_propagators(environ: MutableMapping[str, str] = os.environ) -> None:
    """If ``OTEL_PROPAGATORS`` names a propagator that is not installed, set it to W3C trace
    context (module doc); ``replaced_propagators`` then tells the value it had."""
    global _replaced
    configured = environ.get("OTEL_PROPAGATORS", "")
    if not configured:  # unset or empty: OpenTelemetry's default
        return
    # An empty name ("tracecontext,", " ") is looked up like any other, and found nowhere.
    names = [name.strip() for name in configured.split(",")]
    installed = {entry.name for entry in entry_points(group=PROPAGATOR_ENTRY_POINTS)}
    if all(name.lower() == "none" or name in installed for name in names):
        return
    _replaced = configured
    # What opentelemetry.propagate reads when imported: the only way to keep it from
    # raising, and so to let the process start.
    environ["OTEL_PROPAGATORS"] = FALLBACK_PROPAGATORS


def replaced_propagators() -> str | None:
    """The ``OTEL_PROPAGATORS`` value ``replace_unusable_propagators`` replaced, or None."""
    return _replaced
