"""A coalesced flush serves many callers, so it runs in none of their traces.

Its task gets a context of its own: neither the first caller's span (its statements would be
children of one order's trace while they write many) nor, when that caller's trace is not
sampled, its suppression (which would hide the flush from every other caller's trace too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.coalescing import Coalescer
from shared.testing.tracing import in_memory_tracing
from shared.tracing import tracer, untraced

FIRST_TRACE = 0x0AF7651916CD43DD8448EB211C80319C


@pytest.mark.parametrize("first_sampled", [True, False], ids=["sampled", "unsampled"])
async def test_a_flush_runs_in_no_callers_context(first_sampled: bool) -> None:
    seen: list[SpanContext] = []

    async def flush(items: Mapping[int, str]) -> Mapping[int, str]:
        seen.append(trace.get_current_span().get_span_context())
        return dict(items)

    coalescer: Coalescer[int, str, str] = Coalescer(flush, name="payments insert")
    first = NonRecordingSpan(
        SpanContext(FIRST_TRACE, 0x42, is_remote=True, trace_flags=TraceFlags(int(first_sampled)))
    )
    with in_memory_tracing("payments"):
        platform_tracer = tracer()
        assert platform_tracer is not None

        async def first_caller() -> str:
            with untraced(trace.set_span_in_context(first)):  # as its request would run
                return await coalescer.submit(1, "first")

        async def second_caller() -> str:
            with platform_tracer.start_as_current_span("POST /payments"):
                return await coalescer.submit(2, "second")

        answers = await asyncio.gather(first_caller(), second_caller())
        assert list(answers) == ["first", "second"]
    [context] = seen  # one flush for both
    assert not context.is_valid
