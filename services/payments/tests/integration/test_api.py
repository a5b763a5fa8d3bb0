"""The read API: owners see their own payments, admins see all, nobody sees card data."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from payments.config import PaymentsSettings
from payments.main import create_app
from payments.payment.models import Payment
from payments.payment.reading import PAYMENTS_CURSOR
from shared.testing import app_client
from shared.testing.cursors import bad_cursors

from .conftest import Payments, SigningKey, payment_requested

PROBLEM = "application/problem+json"


@pytest.fixture
async def client(
    settings: PaymentsSettings, payments: Payments
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings)) as client:
        yield client


async def _pay(payments: Payments, user_id: uuid.UUID, card: str = "tok_visa") -> Payment:
    event = payment_requested(card, user_id=user_id, amount=1234)
    await payments.deliver(event)
    return await payments.payment_of(event.data.model_dump()["order_id"])


async def test_owner_reads_their_payment(
    client: httpx.AsyncClient, payments: Payments, signing_key: SigningKey
) -> None:
    alice = uuid.uuid4()
    payment = await _pay(payments, alice)

    response = await client.get(
        f"/api/v1/payments/{payment.id}", headers=signing_key.headers(alice, "customer")
    )

    assert response.status_code == 200
    assert response.json() == {
        "id": str(payment.id),
        "order_id": str(payment.order_id),
        "amount": {"amount": 1234, "currency": "USD"},
        "status": "succeeded",
        "failure_reason": None,
        "refunded_amount": {"amount": 0, "currency": "USD"},
        "created_at": payment.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert "tok_" not in response.text


async def test_failed_payment_shows_its_reason(
    client: httpx.AsyncClient, payments: Payments, signing_key: SigningKey
) -> None:
    alice = uuid.uuid4()
    payment = await _pay(payments, alice, card="tok_insufficientFunds")

    response = await client.get(
        f"/api/v1/payments/{payment.id}", headers=signing_key.headers(alice, "customer")
    )

    assert (response.json()["status"], response.json()["failure_reason"]) == (
        "failed",
        "insufficient_funds",
    )


async def test_another_customers_payment_answers_404_like_a_missing_one(
    client: httpx.AsyncClient, payments: Payments, signing_key: SigningKey
) -> None:
    alice, mallory = uuid.uuid4(), uuid.uuid4()
    payment = await _pay(payments, alice)
    headers = signing_key.headers(mallory, "customer")

    others = await client.get(f"/api/v1/payments/{payment.id}", headers=headers)
    missing = await client.get(f"/api/v1/payments/{uuid.uuid4()}", headers=headers)

    assert others.status_code == missing.status_code == 404
    assert others.headers["content-type"] == PROBLEM
    assert others.json()["detail"] == missing.json()["detail"]
    assert others.json()["type"] == "/problems/payment-not-found"
    assert others.json()["title"] == "Payment not found"  # named like the other services'


async def test_customer_lists_only_their_own_payments_even_when_filtering_by_anothers_order(
    client: httpx.AsyncClient, payments: Payments, signing_key: SigningKey
) -> None:
    alice, mallory = uuid.uuid4(), uuid.uuid4()
    alices = await _pay(payments, alice)
    mallorys = await _pay(payments, mallory)
    headers = signing_key.headers(mallory, "customer")

    own = await client.get("/api/v1/payments", headers=headers)
    snooping = await client.get(
        "/api/v1/payments", params={"order_id": str(alices.order_id)}, headers=headers
    )

    assert [item["id"] for item in own.json()["items"]] == [str(mallorys.id)]
    assert snooping.status_code == 200
    assert snooping.json() == {"items": [], "next_cursor": None}


async def test_admin_reads_and_lists_every_payment(
    client: httpx.AsyncClient, payments: Payments, signing_key: SigningKey
) -> None:
    alices = await _pay(payments, uuid.uuid4())
    bobs = await _pay(payments, uuid.uuid4())
    headers = signing_key.headers(uuid.uuid4(), "admin")

    one = await client.get(f"/api/v1/payments/{alices.id}", headers=headers)
    everything = await client.get("/api/v1/payments", headers=headers)
    by_order = await client.get(
        "/api/v1/payments", params={"order_id": str(bobs.order_id)}, headers=headers
    )

    assert one.status_code == 200
    assert [item["id"] for item in everything.json()["items"]] == [str(bobs.id), str(alices.id)]
    assert [item["id"] for item in by_order.json()["items"]] == [str(bobs.id)]


async def test_list_pages_newest_first_with_an_opaque_cursor(
    client: httpx.AsyncClient, payments: Payments, signing_key: SigningKey
) -> None:
    alice = uuid.uuid4()
    paid = [await _pay(payments, alice) for _ in range(3)]
    headers = signing_key.headers(alice, "customer")

    first = (await client.get("/api/v1/payments", params={"limit": 2}, headers=headers)).json()
    second = (
        await client.get(
            "/api/v1/payments", params={"limit": 2, "cursor": first["next_cursor"]}, headers=headers
        )
    ).json()

    assert [item["id"] for item in first["items"]] == [str(paid[2].id), str(paid[1].id)]
    assert isinstance(first["next_cursor"], str)
    assert [item["id"] for item in second["items"]] == [str(paid[0].id)]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "x"},
        {"order_id": "1"},
    ],
)
async def test_bad_list_parameters_answer_422_problem(
    client: httpx.AsyncClient, signing_key: SigningKey, params: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v1/payments", params=params, headers=signing_key.headers(uuid.uuid4(), "customer")
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"]


@pytest.mark.parametrize("name", list(bad_cursors(issued="e30.e30", kind="k", position="p")))
async def test_a_cursor_the_server_did_not_issue_is_400_invalid_cursor(
    client: httpx.AsyncClient, payments: Payments, signing_key: SigningKey, name: str
) -> None:
    alice = uuid.uuid4()
    for _ in range(2):
        await _pay(payments, alice)
    headers = signing_key.headers(alice, "customer")
    first = (await client.get("/api/v1/payments", params={"limit": 1}, headers=headers)).json()
    issued, position = first["next_cursor"], first["items"][0]["id"]
    bad = bad_cursors(issued=issued, kind=PAYMENTS_CURSOR, position=position)[name]

    response = await client.get("/api/v1/payments", params={"cursor": bad}, headers=headers)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/invalid-cursor"


@pytest.mark.parametrize("path", ["/api/v1/payments", f"/api/v1/payments/{uuid.uuid4()}"])
async def test_no_or_invalid_token_answers_401(client: httpx.AsyncClient, path: str) -> None:
    anonymous = await client.get(path)
    forged = await client.get(path, headers={"Authorization": "Bearer not.a.token"})

    assert anonymous.status_code == forged.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.headers["content-type"] == PROBLEM
