"""POST /api/v1/orders: validation, prices from the replica, Idempotency-Key semantics."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orders.config import OrdersSettings
from orders.events import outbox
from orders.order import placement_repository as repository
from services.orders.tests.conftest import (
    Deliver,
    OutboxReader,
    Place,
    Product,
    User,
    event,
    mint_token,
    order_body,
)
from shared.contracts import Money
from shared.contracts.inventory import ProductUpserted

pytestmark = pytest.mark.usefixtures("database")


async def count_orders(engine: AsyncEngine, user: User) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            text("SELECT count(*) FROM orders.orders WHERE user_id = :user"), {"user": user.id}
        )
    return int(count or 0)


async def test_an_order_is_priced_from_the_replica_and_answered_202_with_location(
    place: Place, product: Product, customer: User, outbox_events: OutboxReader
) -> None:
    pen, ink = await product(price=250), await product(price=1999)
    response = await place(customer, order_body((pen, 4), (ink, 1)))
    assert response.status_code == 202
    order = response.json()
    assert response.headers["location"] == f"/api/v1/orders/{order['id']}"
    assert order["status"] == "pending"
    assert order["user_id"] == str(customer.id)
    assert order["total"] == {"amount": 4 * 250 + 1999, "currency": "USD"}
    assert [line["unit_price"]["amount"] for line in order["items"]] == [250, 1999]
    assert [line["line_total"]["amount"] for line in order["items"]] == [1000, 1999]
    assert [(h["status"], h["reason"]) for h in order["status_history"]] == [
        ("pending", "order_placed")
    ]
    assert "tok_visa" not in response.text
    [(event_type, data)] = await outbox_events(uuid.UUID(order["id"]))
    assert event_type == "orders.order_created"
    assert data["total"] == {"amount": 2999, "currency": "USD"}
    assert data["items"] == [
        {"sku": pen, "quantity": 4, "unit_price": {"amount": 250, "currency": "USD"}},
        {"sku": ink, "quantity": 1, "unit_price": {"amount": 1999, "currency": "USD"}},
    ]


async def test_the_latest_price_is_charged_and_an_older_upsert_is_ignored(
    place: Place, product: Product, deliver: Deliver, customer: User
) -> None:
    sku = await product(price=1000)
    newer = event(
        ProductUpserted(sku=sku, name="n", price=Money(amount=1200, currency="USD"), active=True)
    )
    older = event(
        ProductUpserted(sku=sku, name="o", price=Money(amount=900, currency="USD"), active=True)
    )
    older = older.model_copy(update={"occurred_at": newer.occurred_at.replace(year=2000)})
    await deliver(newer)
    await deliver(older)
    response = await place(customer, order_body((sku, 1)))
    assert response.json()["total"]["amount"] == 1200


@pytest.mark.parametrize("reason", ["unknown sku", "not for sale", "priced in another currency"])
async def test_a_line_that_cannot_be_sold_is_a_422_naming_the_line(
    place: Place, product: Product, customer: User, engine: AsyncEngine, reason: str
) -> None:
    good = await product()
    if reason == "unknown sku":
        bad = f"NOPE-{uuid.uuid4().hex[:8]}"
    elif reason == "not for sale":
        bad = await product(active=False)
    else:
        bad = await product(currency="EUR")
    response = await place(customer, order_body((good, 1), (bad, 1)))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"] == [
        {
            "loc": ["body", "items", 1, "sku"],
            "msg": reason,
            "type": "/problems/products-unavailable",
        }
    ]
    assert bad in problem["detail"]
    assert await count_orders(engine, customer) == 0


@pytest.mark.parametrize(
    "field",
    [
        {"status": "confirmed"},
        {"total": {"amount": 1, "currency": "USD"}},
        {"user_id": str(uuid.uuid4())},
        {"id": str(uuid.uuid4())},
    ],
    ids=lambda f: next(iter(f)),
)
async def test_mass_assignment_of_order_fields_is_a_422(
    place: Place, product: Product, customer: User, engine: AsyncEngine, field: dict[str, object]
) -> None:
    sku = await product()
    response = await place(customer, {**order_body((sku, 1)), **field})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", next(iter(field))]
    assert await count_orders(engine, customer) == 0


@pytest.mark.parametrize("field", ["unit_price", "price", "name"])
async def test_a_price_or_any_extra_field_on_a_line_is_a_422(
    place: Place, product: Product, customer: User, engine: AsyncEngine, field: str
) -> None:
    sku = await product()
    body = order_body((sku, 1))
    body["items"][0][field] = {"amount": 1, "currency": "USD"}
    response = await place(customer, body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "items", 0, field]
    assert await count_orders(engine, customer) == 0


@pytest.mark.parametrize(
    ("mutate", "loc"),
    [
        (lambda b: b.update(items=[]), ["body", "items"]),
        (
            lambda b: b.update(items=[{"sku": f"S{i}", "quantity": 1} for i in range(51)]),
            ["body", "items"],
        ),
        (
            lambda b: b.update(items=[{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}]),
            ["body", "items"],
        ),
        (lambda b: b["items"][0].update(quantity=0), ["body", "items", 0, "quantity"]),
        (lambda b: b["items"][0].update(quantity=1001), ["body", "items", 0, "quantity"]),
        (lambda b: b["items"][0].update(quantity="2"), ["body", "items", 0, "quantity"]),
        (
            lambda b: b["shipping_address"].update(country="XX"),
            ["body", "shipping_address", "country"],
        ),
        (lambda b: b["shipping_address"].pop("city"), ["body", "shipping_address", "city"]),
        (lambda b: b["shipping_address"].update(line1="  "), ["body", "shipping_address", "line1"]),
        (lambda b: b.update(payment={"token": ""}), ["body", "payment", "token"]),
        (lambda b: b.pop("payment"), ["body", "payment"]),
    ],
    ids=[
        "no lines",
        "51 lines",
        "repeated sku",
        "quantity 0",
        "quantity 1001",
        "quantity as text",
        "unknown country",
        "no city",
        "blank line1",
        "empty token",
        "no payment",
    ],
)
async def test_invalid_orders_are_422_and_change_nothing(
    place: Place, customer: User, engine: AsyncEngine, mutate: object, loc: list[object]
) -> None:
    body = order_body(("SKU-X", 1))
    mutate(body)  # type: ignore[operator]
    response = await place(customer, body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == loc
    assert "tok_visa" not in response.text
    assert await count_orders(engine, customer) == 0


async def test_a_missing_idempotency_key_is_a_400(
    client: httpx.AsyncClient, product: Product, customer: User, engine: AsyncEngine
) -> None:
    sku = await product()
    response = await client.post(
        "/api/v1/orders", json=order_body((sku, 1)), headers=customer.headers
    )
    assert response.status_code == 400
    assert response.json()["type"] == "/problems/idempotency-key-missing"
    assert await count_orders(engine, customer) == 0


async def test_a_placed_order_wakes_the_relays_and_a_replay_does_not(
    place: Place, product: Product, customer: User, engine: AsyncEngine
) -> None:
    # The order's insert writes its event and notifies the outbox's channel in the same
    # statement: the relays hear of the new event at commit, not at their next poll.
    sku = await product()
    heard: asyncio.Queue[str] = asyncio.Queue()
    async with engine.connect() as connection:
        listener = (await connection.get_raw_connection()).driver_connection
        assert listener is not None

        def hear(*args: Any) -> None:
            heard.put_nowait(args[2])  # (connection, pid, channel, payload)

        await listener.add_listener(outbox.channel, hear)
        first = await place(customer, order_body((sku, 1)), key="wake")
        assert first.status_code == 202
        assert await asyncio.wait_for(heard.get(), 10) == outbox.channel
        again = await place(customer, order_body((sku, 1)), key="wake")
        assert again.headers["idempotent-replayed"] == "true"
        await asyncio.sleep(0.2)
        assert heard.empty()
        await listener.remove_listener(outbox.channel, hear)


async def test_a_key_whose_first_request_is_still_running_is_a_409_and_writes_nothing(
    place: Place, product: Product, customer: User, engine: AsyncEngine
) -> None:
    # The first request holds the key's lock while its insert runs; stand in for it by
    # holding the same lock from another connection.
    sku = await product()
    async with engine.connect() as connection:
        holder = (await connection.get_raw_connection()).driver_connection
        assert holder is not None
        lock = f"orders.idempotency:{customer.id}:busy"
        await holder.execute("SELECT pg_advisory_lock(hashtextextended($1::text, 0))", lock)
        try:
            response = await place(customer, order_body((sku, 1)), key="busy")
        finally:
            await holder.execute("SELECT pg_advisory_unlock(hashtextextended($1::text, 0))", lock)
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/idempotency-key-in-flight"
    assert await count_orders(engine, customer) == 0

    again = await place(customer, order_body((sku, 1)), key="busy")  # the lock is free now
    assert again.status_code == 202
    assert await count_orders(engine, customer) == 1


async def test_the_same_key_and_body_answer_the_first_response_again(
    place: Place, product: Product, customer: User, engine: AsyncEngine, outbox_events: OutboxReader
) -> None:
    sku = await product()
    first = await place(customer, order_body((sku, 2)), key="retry-me")
    again = await place(customer, order_body((sku, 2)), key="retry-me")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert await count_orders(engine, customer) == 1
    assert len(await outbox_events(uuid.UUID(first.json()["id"]))) == 1


async def test_the_same_key_with_another_body_is_a_422(
    place: Place, product: Product, customer: User, engine: AsyncEngine
) -> None:
    sku = await product()
    assert (await place(customer, order_body((sku, 1)), key="k1")).status_code == 202
    response = await place(customer, order_body((sku, 3)), key="k1")
    assert response.status_code == 422
    assert response.json()["type"] == "/problems/idempotency-key-reused"
    assert [error["loc"] for error in response.json()["errors"]] == [["header", "Idempotency-Key"]]
    assert await count_orders(engine, customer) == 1


async def test_keys_are_scoped_per_user(
    place: Place, product: Product, customer: User, other_customer: User
) -> None:
    sku = await product()
    mine = await place(customer, order_body((sku, 1)), key="shared-key")
    theirs = await place(other_customer, order_body((sku, 1)), key="shared-key")
    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert mine.json()["id"] != theirs.json()["id"]


async def test_ten_concurrent_requests_with_one_key_make_one_order(
    place: Place, product: Product, customer: User, engine: AsyncEngine, outbox_events: OutboxReader
) -> None:
    sku = await product()
    body = order_body((sku, 1))
    responses = await asyncio.gather(*(place(customer, body, key="burst") for _ in range(10)))
    statuses = sorted(response.status_code for response in responses)
    # Each one either won, saw the winner's answer, or found it still in flight (409).
    assert set(statuses) <= {202, 409}
    accepted = {r.json()["id"] for r in responses if r.status_code == 202}
    assert len(accepted) == 1
    assert await count_orders(engine, customer) == 1
    assert len(await outbox_events(uuid.UUID(accepted.pop()))) == 1
    conflicts = [r.json() for r in responses if r.status_code == 409]
    assert all(c["type"] == "/problems/idempotency-key-in-flight" for c in conflicts)


async def test_an_expired_key_may_be_used_again(
    place: Place, product: Product, customer: User, engine: AsyncEngine
) -> None:
    sku = await product()
    first = await place(customer, order_body((sku, 1)), key="old-key")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE orders.idempotency_keys SET created_at = now() - interval '25 hours' "
                "WHERE user_id = :user"
            ),
            {"user": customer.id},
        )
    second = await place(customer, order_body((sku, 5)), key="old-key")
    assert second.status_code == 202
    assert second.json()["id"] != first.json()["id"]
    assert await count_orders(engine, customer) == 2


async def test_only_customers_place_orders(
    client: httpx.AsyncClient, settings: OrdersSettings, admin: User
) -> None:
    body = order_body(("SKU-X", 1))
    anonymous = await client.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "a1"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = mint_token(settings, uuid.uuid4(), ["customer"])[:-4] + "AAAA"
    bad = await client.post(
        "/api/v1/orders",
        json=body,
        headers={"Authorization": f"Bearer {forged}", "Idempotency-Key": "a2"},
    )
    assert bad.status_code == 401
    as_admin = await client.post(
        "/api/v1/orders", json=body, headers={**admin.headers, "Idempotency-Key": "a3"}
    )
    assert as_admin.status_code == 403


async def test_text_with_a_nul_character_is_a_422_never_a_500(
    place: Place, product: Product, customer: User, engine: AsyncEngine
) -> None:
    # Found by fuzzing the platform: Postgres cannot store NUL (nor JSONB its \u0000 escape).
    sku = await product()
    body = order_body((sku, 1))
    body["shipping_address"]["name"] = "Ada\u0000"
    response = await place(customer, body)
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "/problems/unstorable-text"
    assert (await place(customer, order_body((sku, 1), token="tok_\u0000"))).status_code == 422
    assert await count_orders(engine, customer) == 0


async def test_a_token_that_is_not_valid_unicode_is_a_422_never_a_500(
    client: httpx.AsyncClient, product: Product, customer: User, engine: AsyncEngine
) -> None:
    # A lone surrogate escape in the raw JSON: a str field refuses it, the SecretStr token
    # let it through to the request's fingerprint, which could not encode it.
    sku = await product()
    raw = orjson.dumps(order_body((sku, 1))).decode().replace('"tok_visa"', '"tok_\\ud800"')
    response = await client.post(
        "/api/v1/orders",
        content=raw,
        headers={
            **customer.headers,
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["errors"]] == [["body", "payment", "token"]]
    assert "ud800" not in response.text
    assert await count_orders(engine, customer) == 0


async def test_the_answer_is_the_order_as_stored_and_read_back(
    client: httpx.AsyncClient,
    place: Place,
    product: Product,
    customer: User,
    engine: AsyncEngine,
    settings: OrdersSettings,
) -> None:
    # The 202 body is built before the one statement that inserts the order: it must be
    # exactly what a read of the stored order answers, lines in the order they were sent.
    late, early = await product(price=120), await product(price=80)
    response = await place(customer, order_body((late, 2), (early, 5)))
    assert response.status_code == 202
    read = await client.get(response.headers["location"], headers=customer.headers)
    assert read.json() == response.json()
    assert [line["sku"] for line in read.json()["items"]] == [late, early]
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT payment_token, payment_requests, sweep_due_at - created_at AS wait, "
                    "shipping_address FROM orders.orders WHERE id = :id"
                ),
                {"id": uuid.UUID(response.json()["id"])},
            )
        ).one()
    assert (row.payment_token, row.payment_requests) == ("tok_visa", 0)
    assert row.wait.total_seconds() == settings.pending_timeout_seconds
    assert row.shipping_address["city"] == "London"


async def test_an_expired_record_is_replaced_by_the_new_requests_answer(
    place: Place, product: Product, customer: User, engine: AsyncEngine
) -> None:
    sku = await product()
    await place(customer, order_body((sku, 1)), key="renewed")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE orders.idempotency_keys SET created_at = now() - interval '25 hours' "
                "WHERE user_id = :user"
            ),
            {"user": customer.id},
        )
    second = await place(customer, order_body((sku, 5)), key="renewed")
    again = await place(customer, order_body((sku, 5)), key="renewed")
    assert (second.status_code, again.status_code) == (202, 202)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == second.json()
    assert (await place(customer, order_body((sku, 1)), key="renewed")).status_code == 422


@pytest.mark.parametrize("same_body", [True, False], ids=["same-body", "other-body"])
async def test_a_record_committed_after_the_keys_read_is_still_honoured(
    monkeypatch: pytest.MonkeyPatch,
    place: Place,
    product: Product,
    customer: User,
    engine: AsyncEngine,
    outbox_events: OutboxReader,
    same_body: bool,
) -> None:
    # The key's record is read by a statement of its own: a first request committing after
    # it is not seen there. Simulated by hiding the record from that read; the insert must
    # then write nothing and answer as a replay.
    sku = await product()
    first = await place(customer, order_body((sku, 1)), key="raced")
    real_read = repository.read_key_and_prices

    async def stale_read(db: Any, **kwargs: Any) -> repository.KeyAndPrices:
        found = await real_read(db, **kwargs)
        return repository.KeyAndPrices(record=None, prices=found.prices)

    monkeypatch.setattr(repository, "read_key_and_prices", stale_read)
    second = await place(customer, order_body((sku, 1 if same_body else 2)), key="raced")
    if same_body:
        assert second.status_code == 202
        assert second.headers["idempotent-replayed"] == "true"
        assert second.json() == first.json()
    else:
        assert second.status_code == 422
        assert second.json()["type"] == "/problems/idempotency-key-reused"
        assert [error["loc"] for error in second.json()["errors"]] == [
            ["header", "Idempotency-Key"]
        ]
    assert await count_orders(engine, customer) == 1
    assert len(await outbox_events(uuid.UUID(first.json()["id"]))) == 1
