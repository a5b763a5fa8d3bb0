"""The SDK installed from ``OTEL_*``: provider, sampler, OTLP/HTTP exporter, instrumentations.

Only the standard variables configure it (docs/tracing.md): the SDK reads the exporter's
(``OTEL_EXPORTER_OTLP_*``), the batch processor's (``OTEL_BSP_*``) and the resource's
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) itself; an exporter or a protocol that
is not shipped keeps tracing off, with one error logged. The sampler is built here from
``OTEL_TRACES_SAMPLER`` and ``_ARG`` so that it can also drop a client span without a
parent: a statement or a Redis call that no request or event caused (a relay's poll, a
sweeper's scan) would otherwise start a trace of one span every few seconds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from shared.tracing.propagation import replace_unusable_propagators, replaced_propagators

if TYPE_CHECKING:
    # Imported only to type: it imports opentelemetry.propagate (shared.tracing.propagation).
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )

logger = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "commerce"
DEFAULT_SAMPLER = "parentbased_always_on"
SHIPPED_PROTOCOL = "http/protobuf"


@dataclass
class _Installed:
    provider: TracerProvider
    tracer: trace.Tracer
    instrumentors: list[BaseInstrumentor] = field(default_factory=list)


_installed: _Installed | None = None


def tracing_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces: an OTLP endpoint (an empty one is
    none), or the otlp exporter named, and the SDK not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporters(environ)
    if "none" in exporters:
        return False
    if "otlp" in exporters:
        return True
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def unsupported_export(environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the ``OTEL_*`` variables ask for an export that is not shipped (an exporter other
    than otlp, a protocol other than http/protobuf), or None."""
    unsupported = _exporters(environ) - {"otlp"}
    if unsupported:
        return f"OTEL_TRACES_EXPORTER names {', '.join(sorted(unsupported))}: only otlp ships"
    # The traces-specific variable wins over the general one, as in the SDK.
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(name, "").strip().lower()
        if protocol:
            if protocol != SHIPPED_PROTOCOL:
                return f"{name}={protocol}: only {SHIPPED_PROTOCOL} ships"
            break
    return None


def _exporters(environ: Mapping[str, str]) -> set[str]:
    return {
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    }


def tracing_enabled() -> bool:
    """Whether this process traces (``configure_tracing`` found it wanted)."""
    return _installed is not None


def tracer() -> trace.Tracer | None:
    """The platform's tracer, or None when tracing is off."""
    return _installed.tracer if _installed is not None else None


def configure_tracing(process_name: str) -> bool:
    """Install tracing if the environment asks for it (once per process); whether it is on.

    ``process_name`` is the default ``service.name`` (``orders``, ``orders-worker``), used
    unless ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` name one.
    """
    if _installed is not None:
        return True
    if not tracing_wanted():
        return False
    problem = unsupported_export()
    if problem is not None:
        logger.error("tracing off: %s (docs/tracing.md)", problem)
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    replace_unusable_propagators()  # before the instrumentations import opentelemetry.propagate
    if (unusable := replaced_propagators()) is not None:
        logger.error(
            "tracing: OTEL_PROPAGATORS=%r names a propagator that is not installed; "
            "propagating W3C trace context (tracecontext), as every hop does (docs/tracing.md)",
            unusable,
        )
    provider = build_provider(process_name, [BatchSpanProcessor(OTLPSpanExporter())])
    # Not made the global provider: nothing of ours needs it (the instrumentations are given
    # it), and FastAPI starts telemetry of its own once there is one, a second server span
    # per request that records its query string.
    install(provider)
    logger.info(
        "tracing on: service %s, sampler %s",
        provider.resource.attributes.get(SERVICE_NAME),
        provider.sampler.get_description(),
    )
    return True


def build_provider(process_name: str, processors: Sequence[SpanProcessor]) -> TracerProvider:
    """A provider with the sampler of ``OTEL_TRACES_SAMPLER`` and the resource of the
    environment, named ``process_name`` unless the environment names the service."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: process_name}))
    provider = TracerProvider(
        sampler=NoUnparentedClientSpans(sampler_from_environment()), resource=resource
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def install(provider: TracerProvider) -> None:
    """Trace with ``provider``: the platform's tracer, asyncpg and Redis instrumented."""
    global _installed
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentors: list[BaseInstrumentor] = [
        AsyncPGInstrumentor(),  # type: ignore[no-untyped-call]
        RedisInstrumentor(),
    ]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    _installed = _Installed(
        provider, provider.get_tracer(INSTRUMENTATION_NAME), instrumentors=instrumentors
    )


def uninstall() -> None:
    """Undo ``install`` (tests): instrumentations removed, helpers off again."""
    global _installed
    installed, _installed = _installed, None
    if installed is not None:
        for instrumentor in installed.instrumentors:
            instrumentor.uninstrument()


def shutdown_tracing() -> None:
    """Export the spans still queued, then stop: for a server's shutdown, since uvicorn
    re-raises the SIGTERM it stopped on, which ends the process before the SDK's exit hook
    would have run."""
    if _installed is not None:
        _installed.provider.shutdown()


def current_trace_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids as hex (for log lines), or None unless it is
    sampled: an id in a log line leads to a trace someone can open."""
    if _installed is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# -- sampling -------------------------------------------------------------------------------


def sampler_from_environment(environ: Mapping[str, str] = os.environ) -> Sampler:
    """The sampler ``OTEL_TRACES_SAMPLER`` (and ``_ARG``) name; parent-based, always on,
    by default, as the specification has it."""
    name = environ.get("OTEL_TRACES_SAMPLER", DEFAULT_SAMPLER).strip().lower() or DEFAULT_SAMPLER
    ratio = _ratio(environ.get("OTEL_TRACES_SAMPLER_ARG"))
    samplers: dict[str, Callable[[], Sampler]] = {
        "always_on": lambda: ALWAYS_ON,
        "always_off": lambda: ALWAYS_OFF,
        "traceidratio": lambda: TraceIdRatioBased(ratio),
        "parentbased_always_on": lambda: ParentBased(ALWAYS_ON),
        "parentbased_always_off": lambda: ParentBased(ALWAYS_OFF),
        "parentbased_traceidratio": lambda: ParentBased(TraceIdRatioBased(ratio)),
    }
    if name not in samplers:
        logger.warning("tracing: unknown OTEL_TRACES_SAMPLER %r, using %s", name, DEFAULT_SAMPLER)
        name = DEFAULT_SAMPLER
    return samplers[name]()


def _ratio(text: str | None) -> float:
    if text is None or not text.strip():
        return 1.0
    try:
        ratio = float(text)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        logger.warning("tracing: OTEL_TRACES_SAMPLER_ARG %r is not in [0, 1], using 1.0", text)
        return 1.0
    return ratio


class NoUnparentedClientSpans(Sampler):
    """Drops a client span that has no parent (module doc); asks ``delegate`` otherwise."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            parent = trace.get_current_span(parent_context).get_span_context()
            if not parent.is_valid:
                return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoUnparentedClientSpans{{{self.delegate.get_description()}}}"
