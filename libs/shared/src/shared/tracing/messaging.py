"""One trace per order across the outbox and RabbitMQ (docs/tracing.md).

- An outbox row stores the W3C context (``traceparent``, ``tracestate``) of the transaction
  that wrote it (``outbox_trace_contexts``): the request's span, or the consumer span of the
  event that caused it (``causation_id``), even when a batch handler emits for several.
- The relay publishes each row in a producer span, child of the stored context, and sends
  that span's context in the message's AMQP headers, never in the body (``publishing``).
- A consumer continues it: one consumer span per event, child of its producer span; a batch
  handled in one transaction also gets a span of its own linking each event's context
  (``consuming``); a prepared handler's preparation gets one too (``preparing``).
Off, each helper returns at its first test and nothing is stored or sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import replace
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
    def causation_id(self) -> str | None: ...


def outbox_trace_contexts(events: Sequence[_Caused]) -> list[str | None]:
    """Per event, the context its outbox row stores (a JSON object of W3C headers), or None:
    that of the consumer span of the event that caused it, if this transaction handles that
    event, else the current one. All None when tracing is off."""
    if not setup.tracing_enabled():
        return [None] * len(events)
    causes = _CAUSES.get()
    current = get_current()
    encoded: dict[int, str | None] = {}
    stored: list[str | None] = []
    for event in events:
        context = current
        if causes is not None and event.causation_id is not None:
            context = causes.get(event.causation_id, current)
        key = id(context)
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
        try:
            yield
        except BaseException as exc:
            for span in spans:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            _CAUSES.reset(token)
            for span in spans:
                span.end()


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
