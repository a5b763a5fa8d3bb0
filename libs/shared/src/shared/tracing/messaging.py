"""One trace per order across the outbox and RabbitMQ (docs/tracing.md).

- An outbox row stores the W3C context (``traceparent``, ``tracestate``) of the transaction
  that wrote it (``outbox_trace_contexts``): the request's span, or the consumer span of the
  event that caused it (``causation_id``), even when a batch handler emits for several.
- The relay publishes each row in a producer span, child of the stored context, and sends
  that span's context in the message's AMQP headers, never in the body (``publishing``).
- A consumer continues it: one consumer span per event, child of its producer span; a batch
  handled in one transaction also gets a span of its own linking each event's context
  (``consuming``), each event's current while a handler runs for it alone (``handling``);
  a prepared handler's preparation gets one too (``preparing``).
- A row a periodic job acts on later keeps its writer's context too (``row_trace_contexts``);
  the job's events continue it (``JobTraces``).
Off, each helper returns at its first test and nothing is stored or sent.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import orjson
from opentelemetry import trace
from opentelemetry.context import Context, get_current
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from shared.tracing import setup
from shared.tracing.propagation import carrier_of, extract
from shared.tracing.unsampled import sampled, untraced

if TYPE_CHECKING:
    from aio_pika.abc import AbstractIncomingMessage

    from shared.messaging.envelope import Envelope

MESSAGING_SYSTEM = "rabbitmq"

# Within a consumer's transaction: per event id handled, the context of its consumer span,
# so that an event a handler emits continues the trace of the event that caused it.
_CAUSES: ContextVar[Mapping[str, Context] | None] = ContextVar("trace_causes", default=None)
# Within a periodic job's transaction: per event id it emits, the context of the trace that
# event continues (``JobTraces``), so that a job's events stay in their orders' traces.
_CONTINUED: ContextVar[Mapping[str, Context] | None] = ContextVar("trace_continued", default=None)
# Within a batch's transaction (sampled): per event id, its consumer span (``handling``).
_SPANS: ContextVar[Mapping[uuid.UUID, trace.Span] | None] = ContextVar(
    "trace_event_spans", default=None
)
_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads AMQP headers, whose string values may arrive as bytes."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier)


_GETTER = _HeaderGetter()


def extract_headers(headers: Mapping[str, Any] | None) -> Context:
    """The trace context a message's headers (or a stored carrier) carry; empty if none."""
    return extract(headers or {}, getter=_GETTER)


# -- outbox ---------------------------------------------------------------------------------


class _Caused(Protocol):
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def causation_id(self) -> str | None: ...


def outbox_trace_contexts(events: Sequence[_Caused]) -> list[str | None]:
    """Per event, the context its outbox row stores (a JSON object of W3C headers), or None:
    that of the trace a periodic job continues with it (``JobTraces``), else that of the
    consumer span of the event that caused it, if this transaction handles that event, else
    the current one. All None when tracing is off."""
    if not setup.tracing_enabled():
        return [None] * len(events)
    continued = _CONTINUED.get()
    if continued is None:
        return _stored_contexts([event.causation_id for event in events])
    current = get_current()
    contexts = [continued.get(str(event.id)) for event in events]
    found = _contexts([event.causation_id for event in events])
    return _encoded([own or other for own, other in zip(contexts, found, strict=True)], current)


def row_trace_contexts(causes: Iterable[str | None]) -> list[str | None] | None:
    """Per row a transaction writes about an event it handles (that event's id; None: about
    none), the context to store with it for a periodic job that acts on the row later
    (``JobTraces``): as ``outbox_trace_contexts`` has it. None when tracing is off: no list
    is built, and a NULL array's ``unnest`` beside others yields NULLs."""
    if not setup.tracing_enabled():
        return None
    return _stored_contexts(list(causes))


def current_trace_context() -> str | None:
    """The current context as a row stores it (``row_trace_contexts``); None when off."""
    if not setup.tracing_enabled():
        return None
    return _stored_contexts([None])[0]


def _contexts(causes: Sequence[str | None]) -> list[Context | None]:
    causes_handled = _CAUSES.get()
    if causes_handled is None:
        return [None] * len(causes)
    return [causes_handled.get(cause) if cause is not None else None for cause in causes]


def _stored_contexts(causes: Sequence[str | None]) -> list[str | None]:
    return _encoded(_contexts(causes), get_current())


def _encoded(contexts: Sequence[Context | None], current: Context) -> list[str | None]:
    """Each context (None: ``current``) as stored: JSON of its W3C headers, or None."""
    encoded: dict[int, str | None] = {}
    stored: list[str | None] = []
    for found in contexts:
        context = current if found is None else found
        key = id(context)  # a batch's events share a few contexts: each encoded once
        if key not in encoded:
            carrier = carrier_of(context)
            encoded[key] = orjson.dumps(carrier).decode() if carrier else None
        stored.append(encoded[key])
    return stored


def stored_headers(stored: str | None) -> dict[str, str] | None:
    """The AMQP headers an outbox row's stored context becomes (None if it has none)."""
    if not stored:
        return None
    carrier = orjson.loads(stored)
    if not isinstance(carrier, dict):
        return None
    return {str(key): str(value) for key, value in carrier.items()}


# -- relay ----------------------------------------------------------------------------------


class _Outgoing(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str] | None: ...


OutgoingT = TypeVar("OutgoingT", bound=_Outgoing)


class Publication(Generic[OutgoingT]):
    """Messages about to be published; with tracing on, each whose trace is sampled (or
    starts here) in a producer span whose context replaced the stored one in its headers.
    ``confirmed`` ends the spans."""

    def __init__(self, messages: list[OutgoingT], spans: list[trace.Span | None]) -> None:
        self.messages = messages
        self._spans = spans  # per message, its span or None

    def confirmed(self, results: Sequence[BaseException | None]) -> None:
        """Per message, None (the broker confirmed it) or why it was not."""
        for span, error in zip(self._spans, results, strict=False):
            if span is None:
                continue
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            span.end()
        self._spans = []


def publishing(messages: list[OutgoingT]) -> Publication[OutgoingT]:
    """The relay's batch about to be published (see ``Publication``). A message whose stored
    context is not sampled travels with it as it is, in no span (``shared.tracing.unsampled``)."""
    tracer = setup.tracer()
    if tracer is None:
        return Publication(messages, [])
    spans: list[trace.Span | None] = []
    outgoing: list[OutgoingT] = []
    for message in messages:
        parent = extract_headers(message.headers)
        if sampled(parent) is False:
            spans.append(None)
            outgoing.append(message)
            continue
        span = tracer.start_span(
            f"publish {message.event_type}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation.type": "send",
                "messaging.message.id": message.event_id,
                "messaging.rabbitmq.destination.routing_key": message.event_type,
            },
        )
        spans.append(span)
        headers = carrier_of(trace.set_span_in_context(span))
        outgoing.append(replace(message, headers=headers or None))  # type: ignore[type-var]
    return Publication(outgoing, spans)


# -- consumers ------------------------------------------------------------------------------


class Delivered(Protocol):
    """A consumer's delivery: the message as received and its decoded event."""

    @property
    def message(self) -> AbstractIncomingMessage: ...
    @property
    def event(self) -> Envelope: ...


def _consumer_attributes(purpose: str, event: Envelope) -> dict[str, str]:
    return {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.consumer.group.name": purpose,
        "messaging.message.id": str(event.id),
        "messaging.rabbitmq.destination.routing_key": event.type,
    }


def consuming(
    purpose: str, deliveries: Sequence[Delivered]
) -> contextlib.AbstractAsyncContextManager[None]:
    """Around the transaction that handles ``deliveries`` (module doc): ``async with``, so
    that it sits beside the session's own context managers. Deliveries none of whose traces
    is sampled are handled untraced (``shared.tracing.unsampled``)."""
    if not setup.tracing_enabled() or not deliveries:
        return _NOTHING
    parents = [extract_headers(delivery.message.headers) for delivery in deliveries]
    if all(sampled(parent) is False for parent in parents):
        return _unsampled(deliveries, parents)
    return _consuming(purpose, deliveries, parents)


@contextlib.asynccontextmanager
async def _unsampled(
    deliveries: Sequence[Delivered], parents: Sequence[Context]
) -> AsyncIterator[None]:
    """No span; each event's context is what the events it causes carry on."""
    token = _CAUSES.set(
        {
            str(delivery.event.id): parent
            for delivery, parent in zip(deliveries, parents, strict=True)
        }
    )
    try:
        with untraced(parents[0] if len(parents) == 1 else None):
            yield
    finally:
        _CAUSES.reset(token)


@contextlib.asynccontextmanager
async def _consuming(
    purpose: str, deliveries: Sequence[Delivered], parents: Sequence[Context]
) -> AsyncIterator[None]:
    tracer = setup.tracer()
    assert tracer is not None
    if len(deliveries) == 1:
        event = deliveries[0].event
        with tracer.start_as_current_span(
            f"process {event.type}",
            context=parents[0],
            kind=SpanKind.CONSUMER,
            attributes=_consumer_attributes(purpose, event),
        ):
            yield
        return
    links = [
        Link(
            trace.get_current_span(parent).get_span_context(),
            {"messaging.message.id": str(delivery.event.id)},
        )
        for delivery, parent in zip(deliveries, parents, strict=True)
    ]
    with tracer.start_as_current_span(
        f"process {purpose} batch",
        context=Context(),  # a batch belongs to no one event's trace: it links them all
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": purpose,
            "messaging.batch.message_count": len(deliveries),
        },
    ) as batch:
        batch_link = [Link(batch.get_span_context())]
        spans = [
            tracer.start_span(
                f"process {delivery.event.type}",
                context=parent,
                kind=SpanKind.CONSUMER,
                links=batch_link,
                attributes=_consumer_attributes(purpose, delivery.event),
            )
            for delivery, parent in zip(deliveries, parents, strict=True)
        ]
        causes = {
            str(delivery.event.id): trace.set_span_in_context(span)
            for delivery, span in zip(deliveries, spans, strict=True)
        }
        token = _CAUSES.set(causes)
        spans_token = _SPANS.set(
            {delivery.event.id: span for delivery, span in zip(deliveries, spans, strict=True)}
        )
        try:
            # An event's span turns ERROR only if its own handler raised (``handling``): the
            # others of a failed batch are rolled back through no fault of theirs, and tried
            # again in a transaction (and spans) of their own; the batch span has the error.
            yield
        finally:
            _SPANS.reset(spans_token)
            _CAUSES.reset(token)
            for span in spans:
                span.end()


def handling(event_id: uuid.UUID) -> contextlib.AbstractContextManager[None] | None:
    """Within a batch's transaction, around a handler's call for this one event: its consumer
    span current, so that its statements and log lines are in its order's trace, and marked
    ERROR if the call raises. None (nothing to enter) when tracing is off, for a transaction
    of one event (its span is current already) and for one no sampled trace follows."""
    spans = _SPANS.get()
    if spans is None:
        return None
    span = spans.get(event_id)
    return None if span is None else _handling(span)


@contextlib.contextmanager
def _handling(span: trace.Span) -> Iterator[None]:
    with trace.use_span(span, record_exception=False, set_status_on_exception=False):
        try:
            yield
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def event_trace_ids(event_id: uuid.UUID) -> tuple[str, str] | None:
    """The trace and span ids (hex) of the consumer span of this event in the current
    transaction, for a line logged about it once that span has ended (``give_back``); None
    when tracing is off or no sampled span stands for it."""
    if not setup.tracing_enabled():
        return None
    spans = _SPANS.get()
    span = spans.get(event_id) if spans is not None else None
    if span is None:  # a transaction of one event, or a preparation: its span is current
        return setup.current_trace_ids()
    context = span.get_span_context()
    if not context.trace_flags.sampled:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def preparing(purpose: str, delivery: Delivered) -> contextlib.AbstractContextManager[None]:
    """Around a prepared handler's ``prepare`` of ``delivery`` (a provider call); untraced if
    its trace is not sampled."""
    tracer = setup.tracer()
    if tracer is None:
        return _NOTHING
    event = delivery.event
    parent = extract_headers(delivery.message.headers)
    if sampled(parent) is False:
        return untraced(parent)
    return tracer.start_as_current_span(  # type: ignore[return-value]
        f"prepare {event.type}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=_consumer_attributes(purpose, event),
    )


# -- periodic jobs --------------------------------------------------------------------------


class JobTraces:
    """Within: the events a periodic job emits continue the traces stored with the rows it
    acts on (``row_trace_contexts``): the order's, never a new one, sampled or not as it was.

    ``emit`` names each row's context and its events; a sampled one gets a span ``name``
    (internal), child of it, ended on exit; an unsampled one no span, its context passed on
    with the flag off. The job's outbox write, inside, stores each event's context. Off, or
    for a row that stored none, nothing is parsed nor recorded: the job's own context stays.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._tracer = setup.tracer()
        self._continued: dict[str, Context] = {}
        self._spans: list[trace.Span] = []
        self._token: Token[Mapping[str, Context] | None] | None = None

    def __enter__(self) -> JobTraces:
        if self._tracer is not None:
            self._token = _CONTINUED.set(self._continued)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _CONTINUED.reset(self._token)
            self._token = None
        for span in self._spans:
            if kind is not None:
                span.set_status(Status(StatusCode.ERROR, kind.__name__))
            span.end()
        self._spans = []

    def emit(
        self,
        stored: Mapping[str, Any] | str | None,
        events: Iterable[_Caused],
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        """``events`` continue the trace ``stored`` (a row's ``trace_context``)."""
        if self._tracer is None or not stored:
            return
        parent = extract_headers(orjson.loads(stored) if isinstance(stored, str) else stored)
        is_sampled = sampled(parent)
        if is_sampled is None:
            return
        context = parent
        if is_sampled:
            span = self._tracer.start_span(
                self.name, context=parent, kind=SpanKind.INTERNAL, attributes=attributes
            )
            self._spans.append(span)
            context = trace.set_span_in_context(span, parent)
        for event in events:
            self._continued[str(event.id)] = context
