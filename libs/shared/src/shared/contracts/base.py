"""What every event payload is, and the registry of ``(type, version)`` → payload model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict


class EventPayload(BaseModel):
    """The ``data`` of one event type at one version.

    Consumers read tolerantly (unknown fields are ignored), so adding an optional field is a
    compatible change; anything else needs a new version.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    event_version: ClassVar[int]
    # Keys of ``data`` the outbox relay removes from the stored row once the broker confirmed
    # it (a payment token): the consumer has its copy, the outbox must not keep one.
    redacted_on_send: ClassVar[frozenset[str]] = frozenset()


PayloadT = TypeVar("PayloadT", bound=type[EventPayload])


class UnknownEventError(LookupError):
    """No contract is registered for this ``(type, version)``."""


_CONTRACTS: dict[tuple[str, int], type[EventPayload]] = {}


def contract(event_type: str, version: int) -> Callable[[PayloadT], PayloadT]:
    """Class decorator: register a payload model as the contract of ``(type, version)``."""

    def register(model: PayloadT) -> PayloadT:
        key = (event_type, version)
        if key in _CONTRACTS and _CONTRACTS[key] is not model:
            raise ValueError(f"contract {event_type} v{version} registered twice")
        model.event_type = event_type
        model.event_version = version
        _CONTRACTS[key] = model
        return model

    return register


def payload_model(event_type: str, version: int) -> type[EventPayload]:
    """The payload model of ``(type, version)``; raise ``UnknownEventError`` if none."""
    try:
        return _CONTRACTS[(event_type, version)]
    except KeyError:
        raise UnknownEventError(f"no contract for {event_type!r} version {version}") from None


def all_contracts() -> Iterator[tuple[str, int, type[EventPayload]]]:
    """Every registered contract, sorted by type then version."""
    for (event_type, version), model in sorted(_CONTRACTS.items()):
        yield event_type, version, model
