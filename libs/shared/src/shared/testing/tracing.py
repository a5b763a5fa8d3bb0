"""Tracing on for a test, every span kept in memory (the SDK's in-memory exporter)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.tracing import setup


@contextmanager
def in_memory_tracing(process_name: str = "test") -> Iterator[InMemorySpanExporter]:
    """Trace as a configured process would (sampler of the environment, instrumentations),
    each span exported as it ends; everything undone at the end."""
    exporter = InMemorySpanExporter()
    provider = setup.build_provider(process_name, [SimpleSpanProcessor(exporter)])
    setup.install(provider)
    try:
        yield exporter
    finally:
        setup.uninstall()
        provider.shutdown()
