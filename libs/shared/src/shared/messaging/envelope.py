"""The event envelope every message carries, and its strict decoding at the consumer's edge."""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError

import shared.contracts  # noqa: F401  (registers every contract before any lookup)
from shared.context import current_request_id
from shared.contracts.base import EventPayload, UnknownEventError, payload_model
from shared.ids import new_id

PayloadT = TypeVar("PayloadT", bound=EventPayload)

_EVENT_TYPE = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$"


class MalformedEventError(ValueError):
    """A message that can never be handled: not JSON, not an envelope, or an unknown contract.

    Such a message goes straight to the dead-letter queue; redelivering it cannot help.
    """


class RefusedEventError(MalformedEventError):
    """A well-formed envelope whose provenance does not hold: its ``producer`` is not the
    service that owns its type, or it arrived under another routing key. The broker lets each
    service publish only its own routing keys; an envelope claiming another's is forged."""


def owner_of(event_type: str) -> str:
    """The service that alone may produce ``event_type``: its prefix (``orders.x`` → orders)."""
    return event_type.partition(".")[0]


def check_provenance(event: Envelope, *, routing_key: str | None) -> None:
    """Raise ``RefusedEventError`` unless ``event`` claims its type's owner as producer and,
    when it came through the events exchange (``routing_key`` given), under its own type.

    The broker's topic permissions bind a routing key to a publisher; this binds the body to
    the routing key, so a service allowed ``orders.*`` cannot pass off a ``payments.*`` body.
    """
    owner = owner_of(event.type)
    if event.producer != owner:
        raise RefusedEventError(f"producer {event.producer!r} may not produce {event.type}")
    if routing_key is not None and routing_key != event.type:
        raise RefusedEventError(f"{event.type} arrived under routing key {routing_key!r}")


class Envelope(BaseModel):
    """One event as it travels: metadata plus a payload validated against its contract."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: uuid.UUID
    type: str = Field(pattern=_EVENT_TYPE)
    version: int = Field(ge=1)
    occurred_at: datetime
    producer: str = Field(min_length=1)
    correlation_id: str | None = None
    causation_id: str | None = None
    data: SerializeAsAny[EventPayload]

    @classmethod
    def new(
        cls,
        payload: EventPayload,
        *,
        producer: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | uuid.UUID | None = None,
    ) -> Envelope:
        """Wrap a payload; type and version come from its contract, the correlation id from
        the current request unless given, the producer from the type's prefix unless given."""
        event_type = payload.event_type
        return cls(
            id=new_id(),
            type=event_type,
            version=payload.event_version,
            occurred_at=datetime.now(UTC),
            producer=producer or owner_of(event_type),
            correlation_id=correlation_id or current_request_id(),
            causation_id=str(causation_id) if causation_id is not None else None,
            data=payload,
        )

    def caused(self, payload: EventPayload, *, producer: str | None = None) -> Envelope:
        """A follow-up event: same correlation id, caused by this one."""
        return Envelope.new(
            payload, producer=producer, correlation_id=self.correlation_id, causation_id=self.id
        )

    def payload(self, model: builtins.type[PayloadT]) -> PayloadT:
        """The payload as ``model``; raise ``TypeError`` if it is another contract."""
        if not isinstance(self.data, model):
            raise TypeError(f"{self.type} v{self.version} is not a {model.__name__}")
        return self.data

    def to_json(self) -> dict[str, Any]:
        """The body as a JSON-ready dict (what the outbox stores)."""
        return self.model_dump(mode="json")

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


def decode(body: bytes) -> Envelope:
    """Parse and validate a message body; raise ``MalformedEventError`` for anything off."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEventError(f"body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedEventError("body is not a JSON object")
    try:
        model = payload_model(str(raw.get("type")), int(raw.get("version", 0)))
    except (UnknownEventError, TypeError, ValueError) as exc:
        raise MalformedEventError(str(exc)) from None
    try:
        data = model.model_validate(raw.get("data"))
        return Envelope.model_validate({**raw, "data": data})
    except ValidationError as exc:
        # Locations and messages only: the offending input may be a payment token, and this
        # text reaches logs and the dead-letter queue's reason.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise MalformedEventError(f"invalid {model.event_type} envelope: {problems}") from None
