"""A benchmark run with tracing on (``--tracing RATIO``): what tracing costs per order.

Every process of the platform traces with parent-based sampling at ``RATIO`` and exports,
with the SDK's default batching, to a local OTLP/HTTP sink that only counts what it
receives (``tests.harness.otlp``), so the receiving side costs the platform nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.harness.otlp import OtlpReceiver, tracing_environment

SDK_EXPORT_DELAY_MS = 5000  # the SDK's own default: as a deployment would run


@contextmanager
def traced(ratio: float | None) -> Iterator[dict[str, str]]:
    """The platform's extra settings: none when ``ratio`` is None (tracing off), else the
    ``OTEL_*`` of a platform tracing to a sink that lives as long as this block."""
    if ratio is None:
        yield {}
        return
    with OtlpReceiver(keep=False) as sink:
        yield tracing_environment(sink.endpoint, ratio=ratio, delay_ms=SDK_EXPORT_DELAY_MS)
        print(f"tracing sink: {sink.requests} exports, {sink.bytes / 1e6:.1f} MB of spans")
