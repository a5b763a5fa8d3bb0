"""Tracing's switch, sampler and log fields: configured by the standard OTEL_* variables only."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

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
    propagation,
    setup,
    tracer,
    tracing_enabled,
    tracing_wanted,
    untraced,
)
from shared.tracing.messaging import (
    consuming,
    event_trace_ids,
    handling,
    outbox_trace_contexts,
    publishing,
)
from shared.tracing.propagation import (
    carrier_of,
    replace_unusable_propagators,
    replaced_propagators,
)
from shared.tracing.setup import (
    NoUnparentedClientSpans,
    sampler_from_environment,
    unsupported_export,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def no_otel(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* variable of the run's environment: none of them turns tracing on here."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


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
        ({"OTEL_TRACES_EXPORTER": "OTLP"}, True),
        # What Compose passes when a variable is empty: still off.
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_TRACES_EXPORTER": ""}, False),
    ],
)
def test_tracing_is_on_only_when_an_otlp_endpoint_or_exporter_is_named(
    environment: dict[str, str], wanted: bool
) -> None:
    assert tracing_wanted(environment) is wanted


@dataclass(frozen=True)
class _Event:
    causation_id: str | None
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class _Message:
    event_id: str
    event_type: str
    headers: dict[str, str] | None


@dataclass(frozen=True)
class _Delivery:
    message: Any
    event: Any


def test_without_otel_variables_nothing_is_installed_and_the_helpers_do_nothing(
    no_otel: None,
) -> None:
    assert configure_tracing("orders") is False
    assert not tracing_enabled()
    # Under a span that is current, as a request's would be: still nothing to store or send.
    parent = NonRecordingSpan(
        SpanContext(0x1234, 0x42, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    with trace.use_span(parent):
        assert current_trace_ids() is None
        assert outbox_trace_contexts([_Event("cause"), _Event(None)]) == [None, None]
        assert event_trace_ids(uuid.uuid4()) is None
    assert handling(uuid.uuid4()) is None  # a handler's call enters nothing
    message = _Message("e1", "orders.order_created", {"traceparent": TRACEPARENT})
    publication = publishing([message])
    assert publication.messages == [message]
    publication.confirmed([None])
    delivery = _Delivery(
        message=_Message("e1", "orders.order_created", {"traceparent": TRACEPARENT}),
        event=_Message("e1", "orders.order_created", None),
    )
    assert consuming("orders.saga", [delivery]).__class__.__name__ == "nullcontext"


def test_an_unsupported_exporter_or_protocol_keeps_tracing_off_with_one_error(
    no_otel: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    cases = [
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
        {"OTEL_TRACES_EXPORTER": "console"},
        {"OTEL_TRACES_EXPORTER": "otlp,Zipkin"},
    ]
    for case in cases:
        with monkeypatch.context() as patched:
            for name, value in case.items():
                patched.setenv(name, value)
            caplog.clear()
            with caplog.at_level(logging.DEBUG, logger="shared.tracing"):
                assert configure_tracing("orders") is False, case
            assert not tracing_enabled()
            [record] = caplog.records
            assert record.levelno == logging.ERROR, case
            assert record.getMessage().startswith("tracing off: "), case
    assert "zipkin" in caplog.records[0].getMessage()  # the last case's, lower-cased


def test_the_exporter_and_protocol_names_are_case_insensitive_and_otlp_http_is_supported() -> None:
    assert unsupported_export({"OTEL_TRACES_EXPORTER": "OTLP"}) is None
    assert unsupported_export({"OTEL_EXPORTER_OTLP_PROTOCOL": "HTTP/Protobuf"}) is None
    # The traces-specific protocol wins over the general one, as in the SDK.
    assert (
        unsupported_export(
            {
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            }
        )
        is None
    )
    assert unsupported_export({}) is None


def test_a_propagator_that_is_not_installed_is_replaced_by_w3c_before_anything_loads_it() -> None:
    environ = {"OTEL_PROPAGATORS": "tracecontext,b3"}
    replace_unusable_propagators(environ)
    assert environ == {"OTEL_PROPAGATORS": "tracecontext"}
    assert replaced_propagators() == "tracecontext,b3"
    for usable in ("tracecontext", "tracecontext,baggage", "baggage", "none", ""):
        environ = {"OTEL_PROPAGATORS": usable}
        replace_unusable_propagators(environ)
        assert environ == {"OTEL_PROPAGATORS": usable}
    # An empty name is looked up like any other, and raises the same.
    for unusable in (" ", "tracecontext,", "tracecontext,,baggage"):
        environ = {"OTEL_PROPAGATORS": unusable}
        replace_unusable_propagators(environ)
        assert environ == {"OTEL_PROPAGATORS": "tracecontext"}, unusable


def test_with_tracing_on_an_unusable_propagator_is_one_error_and_w3c_is_carried(
    no_otel: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(propagation, "_replaced", None)
    monkeypatch.setenv("OTEL_PROPAGATORS", "b3")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")  # nothing to export there
    try:
        with caplog.at_level(logging.ERROR, logger="shared.tracing"):
            assert configure_tracing("orders") is True
    finally:
        installed = setup.tracer()
        setup.shutdown_tracing()
        setup.uninstall()
    assert installed is not None
    [error] = caplog.records
    assert "OTEL_PROPAGATORS='b3'" in error.getMessage()
    assert os.environ["OTEL_PROPAGATORS"] == "tracecontext"
    span = NonRecordingSpan(SpanContext(0x1234, 0x42, False, TraceFlags(TraceFlags.SAMPLED)))
    assert carrier_of(trace.set_span_in_context(span)) == {
        "traceparent": f"00-{0x1234:032x}-{0x42:016x}-01"
    }


# A process's imports, in a process of its own: opentelemetry.propagate reads
# OTEL_PROPAGATORS when it is imported, once per process.
_IMPORTS = """
import shared.messaging.worker, shared.server
from shared.tracing import configure_tracing, untraced
assert configure_tracing("orders") is False
with untraced():
    pass
"""


def test_a_propagator_that_is_not_installed_never_stops_a_process_with_tracing_off() -> None:
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    ran = subprocess.run(
        [sys.executable, "-c", _IMPORTS],
        env={**inherited, "OTEL_PROPAGATORS": "b3"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr


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


def test_log_lines_carry_no_trace_id_of_a_trace_that_is_not_sampled() -> None:
    with in_memory_tracing():
        unsampled = NonRecordingSpan(
            SpanContext(0x1234, 0x42, is_remote=True, trace_flags=TraceFlags(0))
        )
        with untraced(trace.set_span_in_context(unsampled)):  # as an unsampled request runs
            line = orjson.loads(_log_line(JsonFormatter()))
            console = _log_line(ConsoleFormatter())
    assert "trace_id" not in line
    assert "span_id" not in line
    assert f"{0x1234:032x}" not in console
