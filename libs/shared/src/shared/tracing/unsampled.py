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

from opentelemetry import propagate, trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.instrumentation.utils import suppress_instrumentation
from starlette.types import ASGIApp, Receive, Scope, Send

TRACEPARENT = b"traceparent"
TRACE_HEADERS = frozenset({TRACEPARENT, b"tracestate"})


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
        with suppress_instrumentation():
            yield
    finally:
        if token is not None:
            detach(token)


class SampledOnly:
    """Pure ASGI, in front of an app's server spans: a request whose ``traceparent`` says
    not sampled goes to ``app`` itself, untraced with that context current; any other
    request goes to ``traced`` (``app`` inside the server spans)."""

    def __init__(self, traced: ASGIApp, app: ASGIApp) -> None:
        self.traced = traced
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(name == TRACEPARENT for name, _ in scope["headers"]):
            carrier = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in scope["headers"]
                if name in TRACE_HEADERS
            }
            parent = propagate.extract(carrier, context=Context())
            if sampled(parent) is False:
                with untraced(parent):
                    await self.app(scope, receive, send)
                return
        await self.traced(scope, receive, send)


class UntracedUnlessSampled:
    """Pure ASGI, inside an app's server spans: the request runs untraced unless its server
    span is sampled (a root this process decided not to sample, or a path with no span)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or sampled():
            await self.app(scope, receive, send)
            return
        with untraced():
            await self.app(scope, receive, send)
