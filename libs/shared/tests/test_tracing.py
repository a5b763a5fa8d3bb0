"""Tracing's switch, sampler and log fields: configured by the standard OTEL_* variables only."""

from __future__ import annotations

import io
import logging

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from shared.logging import ConsoleFormatter, ContextFilter, JsonFormatter
from shared.testing.tracing import in_memory_tracing
from shared.tracing import (
    configure_tracing,
    current_trace_ids,
    tracer,
    tracing_enabled,
    tracing_wanted,
)
from shared.tracing.messaging import consuming, outbox_trace_contexts, publishing
from shared.tracing.setup import NoUnparentedClientSpans, sampler_from_environment


@pytest.mark.parametrize(
    ("environment", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SERVICE_NAME": "orders", "OTEL_TRACES_SAMPLER": "always_on"}, False),
    ],
)
def test_tracing_is_on_only_when_an_otlp_endpoint_or_exporter_is_named(
    environment: dict[str, str], wanted: bool
) -> None:
    assert tracing_wanted(environment) is wanted


def test_without_otel_variables_nothing_is_installed_and_the_helpers_do_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    assert configure_tracing("orders") is False
    assert not tracing_enabled()
    assert current_trace_ids() is None
    assert outbox_trace_contexts([]) == []
    assert publishing([]).messages == []
    assert consuming("orders.saga", []).__class__.__name__ == "nullcontext"


def test_the_sampler_is_parent_based_by_default_and_takes_the_standard_ratio() -> None:
    assert isinstance(sampler_from_environment({}), ParentBased)
    sampler = sampler_from_environment(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    )
    assert "TraceIdRatioBased{0.1}" in sampler.get_description()
    assert isinstance(
        sampler_from_environment({"OTEL_TRACES_SAMPLER": "traceidratio"}), TraceIdRatioBased
    )
    # Nonsense falls back to the specification's defaults.
    assert isinstance(sampler_from_environment({"OTEL_TRACES_SAMPLER": "sometimes"}), ParentBased)
    assert (
        "{1.0}"
        in sampler_from_environment(
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "7"}
        ).get_description()
    )


def test_a_client_span_without_a_parent_is_dropped_and_one_with_a_parent_is_not() -> None:
    sampler = NoUnparentedClientSpans(sampler_from_environment({}))
    trace_id = 0x1234
    assert sampler.should_sample(None, trace_id, "SELECT", SpanKind.CLIENT).decision is (
        Decision.DROP
    )
    assert sampler.should_sample(None, trace_id, "GET /x", SpanKind.SERVER).decision is (
        Decision.RECORD_AND_SAMPLE
    )
    parent = NonRecordingSpan(
        SpanContext(trace_id, 0x42, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    context = trace.set_span_in_context(parent)
    assert sampler.should_sample(context, trace_id, "SELECT", SpanKind.CLIENT).decision is (
        Decision.RECORD_AND_SAMPLE
    )


def _log_line(formatter: logging.Formatter) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter("orders"))
    handler.setFormatter(formatter)
    logger = logging.getLogger("tracing-test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("a line")
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_log_lines_carry_the_trace_and_span_ids_only_when_tracing_is_on() -> None:
    assert "trace_id" not in orjson.loads(_log_line(JsonFormatter()))
    with in_memory_tracing():
        active = tracer()
        assert active is not None
        with active.start_as_current_span("work") as span:
            line = orjson.loads(_log_line(JsonFormatter()))
            console = _log_line(ConsoleFormatter())
        context = span.get_span_context()
        assert line["trace_id"] == f"{context.trace_id:032x}"
        assert line["span_id"] == f"{context.span_id:016x}"
        assert f"trace {context.trace_id:032x}" in console
    assert "trace_id" not in orjson.loads(_log_line(JsonFormatter()))
