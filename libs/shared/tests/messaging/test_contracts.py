"""Event contracts: the committed snapshots are the published contract."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.contracts import Money, all_contracts
from shared.contracts.inventory import StockReserved
from shared.contracts.orders import OrderCreated
from shared.contracts.schemas import (
    SNAPSHOT_DIR,
    committed_schemas,
    current_schemas,
    export,
    incompatibilities,
)
from shared.messaging.envelope import Envelope, MalformedEventError, decode

CATALOG = {
    "inventory.product_upserted",
    "inventory.stock_reserved",
    "inventory.stock_reservation_failed",
    "inventory.stock_commit_failed",
    "inventory.reservation_expired",
    "inventory.stock_low",
    "orders.order_created",
    "orders.payment_requested",
    "orders.order_confirmed",
    "orders.order_cancelled",
    "orders.refund_requested",
    "payments.payment_succeeded",
    "payments.payment_failed",
    "payments.payment_refunded",
}


def test_every_event_of_the_design_catalog_has_a_contract() -> None:
    assert {event_type for event_type, _, _ in all_contracts()} == CATALOG


def test_committed_snapshots_match_the_contracts_or_a_version_was_bumped() -> None:
    committed, current = committed_schemas(), current_schemas()
    missing = sorted(set(committed) - set(current))
    assert not missing, f"published contracts disappeared: {missing}"
    for name, schema in committed.items():
        problems = incompatibilities(schema, current[name])
        assert not problems, f"{name} changed incompatibly; add a new version: {problems}"
    unsnapshotted = sorted(set(current) - set(committed))
    assert not unsnapshotted, f"run `python -m shared.contracts export` for {unsnapshotted}"
    assert committed == current, "compatible change: run `python -m shared.contracts export`"


def test_removing_a_field_or_requiring_a_new_one_is_incompatible() -> None:
    old = current_schemas()["orders.order_created.v1.json"]
    removed = {**old, "properties": {k: v for k, v in old["properties"].items() if k != "total"}}
    assert incompatibilities(old, removed) == ["data.total: removed"]
    required = {
        **old,
        "properties": {**old["properties"], "coupon": {"type": "string"}},
        "required": [*old["required"], "coupon"],
    }
    assert incompatibilities(old, required) == ["data.coupon: now required"]
    optional = {**old, "properties": {**old["properties"], "coupon": {"type": "string"}}}
    assert incompatibilities(old, optional) == []
    retyped = {**old, "properties": {**old["properties"], "user_id": {"type": "integer"}}}
    assert incompatibilities(old, retyped) == ["data.user_id: schema changed"]


def test_export_refuses_to_overwrite_a_published_contract_incompatibly(tmp_path: Path) -> None:
    name = "orders.order_created.v1.json"
    (tmp_path / name).write_bytes((SNAPSHOT_DIR / name).read_bytes().replace(b'"total"', b'"sum"'))
    with pytest.raises(ValueError, match="incompatibly"):
        export(tmp_path)
    assert name in export(tmp_path, force=True)


def test_money_is_integer_minor_units_with_a_currency_code() -> None:
    assert Money(amount=1999, currency="USD").model_dump() == {"amount": 1999, "currency": "USD"}
    for amount in (19.99, "1999"):
        with pytest.raises(ValidationError):
            Money.model_validate({"amount": amount, "currency": "USD"})
    with pytest.raises(ValidationError):
        Money.model_validate({"amount": 1, "currency": "usd"})


def test_an_envelope_round_trips_with_its_typed_payload() -> None:
    order_id = uuid.uuid4()
    price = Money(amount=500, currency="USD")
    created = OrderCreated(
        order_id=order_id,
        user_id=uuid.uuid4(),
        items=[{"sku": "A", "quantity": 2, "unit_price": price}],  # type: ignore[list-item]
        total=Money(amount=1000, currency="USD"),
    )
    event = Envelope.new(created, correlation_id="req-12345678")
    decoded = decode(event.to_bytes())
    assert decoded == event
    assert decoded.payload(OrderCreated).order_id == order_id
    assert (decoded.type, decoded.version, decoded.producer) == (
        "orders.order_created",
        1,
        "orders",
    )
    follow_up = decoded.caused(StockReserved(order_id=order_id, items=[]))
    assert (follow_up.correlation_id, follow_up.causation_id) == ("req-12345678", str(event.id))
    with pytest.raises(TypeError):
        decoded.payload(StockReserved)


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"type": "orders.order_created", "version": 2, "data": {}}',
        b'{"type": "orders.nope", "version": 1}',
        b'{"type": "orders.order_created", "version": 1}',
    ],
)
def test_undecodable_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedEventError):
        decode(body)
