"""Consumer-driven contracts: each service declares the events and fields it reads
(``<service>/consumed_events.py``); each declaration must hold against the producer's
published schema, and must name exactly the events the service's consumers handle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

import inventory.consumed_events
import orders.consumed_events
import payments.consumed_events
from shared.contracts.schemas import SNAPSHOT_DIR, committed_schemas

pytestmark = pytest.mark.contracts

Schema = dict[str, Any]


def _inventory_handled() -> set[str]:
    from inventory.config import get_settings
    from inventory.handlers import reservations_consumer, stock_alerts_consumer

    consumers = [reservations_consumer(get_settings()), stock_alerts_consumer()]
    return {event for consumer in consumers for event in consumer.handlers}


def _orders_handled() -> set[str]:
    from orders.config import get_settings
    from orders.handlers import consumers

    return {event for consumer in consumers(get_settings()) for event in consumer.handlers}


def _payments_handled() -> set[str]:
    from payments.config import get_settings
    from payments.handlers import requests_consumer
    from payments.provider import FakeProvider

    settings = get_settings()
    sessionmaker = async_sessionmaker()  # never used: only the handler table is read
    provider = FakeProvider.from_settings(settings, sessionmaker=sessionmaker)
    consumer = requests_consumer(settings=settings, sessionmaker=sessionmaker, provider=provider)
    return set(consumer.handlers)


CONSUMERS: dict[str, tuple[dict[str, frozenset[str]], Callable[[], set[str]]]] = {
    "inventory": (inventory.consumed_events.CONSUMED_EVENTS, _inventory_handled),
    "orders": (orders.consumed_events.CONSUMED_EVENTS, _orders_handled),
    "payments": (payments.consumed_events.CONSUMED_EVENTS, _payments_handled),
}


def _published(event_type: str) -> dict[str, Schema]:
    return {
        name: schema
        for name, schema in committed_schemas(SNAPSHOT_DIR).items()
        if name.startswith(f"{event_type}.v")
    }


def _field_problem(schema: Schema, path: str) -> str | None:
    """Why ``path`` is not a field every message of ``schema`` carries; None when it is."""
    node, root = schema, schema
    for part in path.split("."):
        node = _resolved(node, root)
        while node.get("type") == "array":
            node = _resolved(node.get("items", {}), root)
        if part not in node.get("properties", {}):
            return f"{path}: no field {part!r}"
        if part not in node.get("required", []):
            return f"{path}: {part!r} is optional"
        node = node["properties"][part]
    return None


def _resolved(node: Schema, root: Schema) -> Schema:
    ref = node.get("$ref")
    if isinstance(ref, str):
        resolved: Schema = root["$defs"][ref.rsplit("/", 1)[-1]]
        return resolved
    return node


@pytest.mark.parametrize("service", sorted(CONSUMERS))
def test_every_field_a_consumer_reads_is_required_by_the_producers_schema(service: str) -> None:
    declared, _ = CONSUMERS[service]
    problems = []
    for event_type, fields in sorted(declared.items()):
        published = _published(event_type)
        if not published:
            problems.append(f"{event_type}: no published schema")
        for snapshot, schema in published.items():
            problems += [
                f"{snapshot}: {problem}"
                for field in sorted(fields)
                if (problem := _field_problem(schema, field))
            ]
    assert not problems, f"{service} reads what producers do not promise:\n  " + "\n  ".join(
        problems
    )


@pytest.mark.parametrize("service", sorted(CONSUMERS))
def test_the_declaration_names_exactly_the_events_the_consumers_handle(service: str) -> None:
    declared, handled = CONSUMERS[service]
    assert set(declared) == handled()


def test_a_field_the_producer_dropped_or_made_optional_is_reported() -> None:
    schema: Schema = {
        "properties": {
            "order_id": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
        },
        "required": ["items"],
        "$defs": {"Line": {"properties": {"sku": {"type": "string"}}, "required": ["sku"]}},
    }
    assert _field_problem(schema, "items.sku") is None
    assert _field_problem(schema, "order_id") == "order_id: 'order_id' is optional"
    assert _field_problem(schema, "items.quantity") == "items.quantity: no field 'quantity'"
