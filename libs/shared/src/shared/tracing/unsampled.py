"""Work that no sampled trace follows runs with the instrumentations quiet (docs/tracing.md).

Under parent-based sampling at a ratio, most requests and events belong to a trace nobody
records. The SDK would still build each of their spans: attributes gathered, the sampler
asked, a non-recording span made current and undone, for every statement and Redis call,
dozens per order. Instead, a request or an event that arrives with a context whose sampled
flag is off runs with that context current and the instrumentations suppressed (their public
``suppress_instrumentation``): the context still travels on, in an outbox row or an upstream
request, with its flag off, so the next process does not sample it either, but no span is
built. Background work that no request or event caused (the relay's polls, periodic jobs)
runs the same way: a statement without a parent would be dropped by the sampler anyway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import trace
from opentelemetry.context import Context, attach, detach

from shared.tracing import setup


def sampled(context: Context | None = None) -> bool | None:
    """Whether the span of ``context`` (the current one by default) is sampled; None if it
    has no valid span (nothing to continue: a new trace would start)."""
    span_context = trace.get_current_span(context).get_span_context()
    if not span_context.is_valid:
        return None
    return span_context.trace_flags.sampled


@contextlib.contextmanager
def untraced(context: Context | None = None) -> Iterator[None]:
    """Within: ``context`` current (if given) and the instrumentations suppressed."""
    token = attach(context) if context is not None else None
    try:
        if setup.tracing_enabled():
            # Imported only with tracing on: it imports opentelemetry.propagate, which reads
            # OTEL_PROPAGATORS (shared.tracing.propagation). Off, nothing is instrumented.
            from opentelemetry.instrumentation.utils import suppress_instrumentation

            with suppress_instrumentation():
                yield
        else:
            yield
    finally:
        if token is not None:
            detach(token)
