"""The SDK installed from ``OTEL_*``: provider, sampler, OTLP/HTTP exporter, instrumentations.

Only the standard variables configure it (docs/tracing.md): the SDK reads the exporter's
(``OTEL_EXPORTER_OTLP_*``), the batch processor's (``OTEL_BSP_*``), the resource's
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) and the propagators' itself; the sampler
is built here from ``OTEL_TRACES_SAMPLER`` and ``_ARG`` so that it can also drop a client span
without a parent: a statement or a Redis call that no request or event caused (a relay's
poll, a sweeper's scan) would otherwise start a trace of one span every few seconds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
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
from opentelemetry.util.http import ExcludeList, parse_excluded_urls
from opentelemetry.util.types import Attributes
from starlette.routing import Match
from starlette.types import ASGIApp, Scope

from shared.tracing.unsampled import SampledOnly, UntracedUnlessSampled

logger = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "commerce"
# Probes and scrapes are not requests anyone follows: no server span for them.
EXCLUDED_URLS = "/health/live$,/health/ready$,/metrics$"
DEFAULT_SAMPLER = "parentbased_always_on"


@dataclass
class _Installed:
    provider: TracerProvider
    tracer: trace.Tracer
    instrumentors: list[BaseInstrumentor] = field(default_factory=list)


_installed: _Installed | None = None


def tracing_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces: an OTLP endpoint, or the otlp
    exporter named, and the SDK not disabled."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    }
    if "none" in exporters:
        return False
    if "otlp" in exporters:
        return True
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


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
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporters = {n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")}
    if exporters - {"otlp", ""}:
        logger.warning("tracing: only the otlp exporter ships; ignoring %s", exporters - {"otlp"})
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    )
    if protocol not in (None, "", "http/protobuf"):
        logger.warning("tracing: OTLP over %s is not shipped; exporting http/protobuf", protocol)
    provider = build_provider(process_name, [BatchSpanProcessor(OTLPSpanExporter())])
    trace.set_tracer_provider(provider)
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


SpanDetails = Callable[[Mapping[str, Any]], tuple[str, dict[str, Any]]]


def traced_app(app: FastAPI) -> ASGIApp:
    """A FastAPI ``app`` in server spans named by its routes, or ``app`` itself when tracing
    is off: what the server runs."""
    if _installed is None:
        return app
    return server_spans(
        app,
        route_details(app),
        excluded_urls=os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", EXCLUDED_URLS),
    )


def route_details(app: FastAPI) -> SpanDetails:
    """Names a request's server span by the route template it matches (``POST /orders``,
    ``GET /orders/{order_id}``), never by its raw path: names stay few."""

    def details(scope: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        method: str = scope.get("method") or "HTTP"
        for route in app.router.routes:
            match, _ = route.matches(cast(Scope, scope))
            template = getattr(route, "path", None)
            if match is Match.FULL and isinstance(template, str):
                return f"{method} {template}", {"http.route": template}
        return method, {}

    return details


def server_spans(
    app: ASGIApp, span_details: SpanDetails | None = None, *, excluded_urls: str | None = None
) -> ASGIApp:
    """``app`` wrapped in the ASGI instrumentation's server spans, or ``app`` itself when
    tracing is off. ``span_details`` names a request's span from its scope. A request that
    no sampled trace follows skips the spans and runs untraced (``shared.tracing.unsampled``)."""
    if _installed is None:
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    spans: ASGIApp = OpenTelemetryMiddleware(
        UntracedUnlessSampled(app),
        excluded_urls=excluded_urls if excluded_urls is not None else _asgi_excluded_urls(),
        default_span_details=span_details,
        tracer_provider=_installed.provider,
        exclude_spans=["receive", "send"],  # a span per ASGI message: noise, and CPU
    )
    return SampledOnly(spans, app)


def _asgi_excluded_urls() -> str:
    return os.environ.get("OTEL_PYTHON_ASGI_EXCLUDED_URLS", EXCLUDED_URLS)


def excluded_requests() -> ExcludeList:
    """The paths that get no server span (``OTEL_PYTHON_ASGI_EXCLUDED_URLS``, probes and
    scrapes by default), for a server-span middleware of a process's own."""
    return parse_excluded_urls(_asgi_excluded_urls())


def current_trace_ids() -> tuple[str, str] | None:
    """The current trace and span ids as hex (for log lines), or None."""
    if _installed is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
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
