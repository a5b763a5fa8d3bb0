"""Reading orders: ownership (BOLA), cursor pagination, status filter."""

from __future__ import annotations

import uuid

import httpx
import pytest

from orders.order.reading import ORDERS_CURSOR
from services.orders.tests.conftest import Place, Product, User, order_body
from shared.testing.cursors import bad_cursors

pytestmark = pytest.mark.usefixtures("database")


async def test_another_users_order_is_404_for_read_and_cancel_and_absent_from_their_list(
    client: httpx.AsyncClient, place: Place, product: Product, customer: User, other_customer: User
) -> None:
    sku = await product()
    order_id = (await place(customer, order_body((sku, 1)))).json()["id"]
    missing = await client.get(f"/api/v1/orders/{uuid.uuid4()}", headers=other_customer.headers)
    read = await client.get(f"/api/v1/orders/{order_id}", headers=other_customer.headers)
    assert read.status_code == 404
    assert read.json()["detail"] == missing.json()["detail"]  # indistinguishable from absent
    cancel = await client.post(f"/api/v1/orders/{order_id}/cancel", headers=other_customer.headers)
    assert cancel.status_code == 404
    listed = await client.get("/api/v1/orders", headers=other_customer.headers)
    assert listed.json() == {"items": [], "next_cursor": None}
    mine = await client.get(f"/api/v1/orders/{order_id}", headers=customer.headers)
    assert mine.json()["status"] == "pending"


async def test_an_admin_reads_and_lists_every_order(
    client: httpx.AsyncClient, place: Place, product: Product, customer: User, admin: User
) -> None:
    sku = await product()
    order_id = (await place(customer, order_body((sku, 1)))).json()["id"]
    assert (
        await client.get(f"/api/v1/orders/{order_id}", headers=admin.headers)
    ).status_code == 200
    page = await client.get("/api/v1/orders", params={"limit": 100}, headers=admin.headers)
    assert order_id in [item["id"] for item in page.json()["items"]]


async def test_the_list_pages_newest_first_with_an_opaque_cursor(
    client: httpx.AsyncClient, place: Place, product: Product, customer: User
) -> None:
    sku = await product()
    placed = [(await place(customer, order_body((sku, n)))).json()["id"] for n in range(1, 6)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/api/v1/orders", params=params, headers=customer.headers)).json()
        pages += 1
        seen += [item["id"] for item in body["items"]]
        assert "status_history" not in body["items"][0]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(placed))


async def test_the_list_filters_by_status(
    client: httpx.AsyncClient, place: Place, product: Product, customer: User
) -> None:
    sku = await product()
    kept = (await place(customer, order_body((sku, 1)))).json()["id"]
    dropped = (await place(customer, order_body((sku, 2)))).json()["id"]
    await client.post(f"/api/v1/orders/{dropped}/cancel", headers=customer.headers)
    for status, expected in (("pending", [kept]), ("cancelled", [dropped]), ("shipped", [])):
        body = (
            await client.get("/api/v1/orders", params={"status": status}, headers=customer.headers)
        ).json()
        assert [item["id"] for item in body["items"]] == expected


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"limit": "+5"}, {"status": "lost"}],
    ids=["limit 0", "limit 101", "limit text", "limit signed", "unknown status"],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, customer: User, params: dict[str, str | int]
) -> None:
    response = await client.get("/api/v1/orders", params=params, headers=customer.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("name", list(bad_cursors(issued="e30.e30", kind="k", position="p")))
async def test_a_cursor_the_server_did_not_issue_is_400_invalid_cursor(
    client: httpx.AsyncClient, place: Place, product: Product, customer: User, name: str
) -> None:
    sku = await product()
    for quantity in (1, 2):
        await place(customer, order_body((sku, quantity)))
    first = (
        await client.get("/api/v1/orders", params={"limit": 1}, headers=customer.headers)
    ).json()
    issued, position = first["next_cursor"], first["items"][0]["id"]
    bad = bad_cursors(issued=issued, kind=ORDERS_CURSOR, position=position)[name]
    response = await client.get("/api/v1/orders", params={"cursor": bad}, headers=customer.headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/invalid-cursor"


async def test_reading_needs_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/orders")).status_code == 401
    assert (await client.get(f"/api/v1/orders/{uuid.uuid4()}")).status_code == 401
