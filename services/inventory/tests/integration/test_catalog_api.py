"""The catalog over HTTP: admin writes, public reads, validation, cursors, ETags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from inventory.catalog.service import PRODUCTS_CURSOR
from shared.testing.cursors import bad_cursors

PRODUCTS = "/api/v1/products"


def product_body(sku: str, **overrides: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": f"Product {sku}",
        "price": {"amount": 1999, "currency": "USD"},
        "initial_stock": 5,
        "reorder_point": 1,
        **overrides,
    }


async def create(client: httpx.AsyncClient, admin: dict[str, str], sku: str, **kw: Any) -> Any:
    response = await client.post(PRODUCTS, json=product_body(sku, **kw), headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


async def test_admin_creates_a_product_with_stock_and_anyone_reads_it(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str
) -> None:
    response = await client.post(
        PRODUCTS, json=product_body(sku, description="A thing"), headers=admin
    )
    assert response.status_code == 201
    assert response.headers["location"] == f"{PRODUCTS}/{sku}"
    created = response.json()
    assert created["price"] == {"amount": 1999, "currency": "USD"}
    assert created["available"] == 5
    assert created["active"] is True

    public = await client.get(f"{PRODUCTS}/{sku}")
    assert public.status_code == 200
    assert public.json() == created
    assert public.headers["cache-control"].startswith("public, max-age=")


async def test_creating_a_taken_sku_is_409_and_keeps_the_first(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str
) -> None:
    await create(client, admin, sku)
    again = await client.post(PRODUCTS, json=product_body(sku, name="Other"), headers=admin)
    assert_problem(again, 409)
    assert (await client.get(f"{PRODUCTS}/{sku}")).json()["name"] == f"Product {sku}"


async def test_product_creation_is_emitted_once_through_the_outbox(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sku: str,
    outbox_events: Callable[..., Any],
) -> None:
    await create(client, admin, sku)
    events = await outbox_events("inventory.product_upserted", lambda d: d["sku"] == sku)
    assert events == [
        {
            "sku": sku,
            "name": f"Product {sku}",
            "price": {"amount": 1999, "currency": "USD"},
            "active": True,
        }
    ]


async def test_patch_changes_only_the_fields_sent_and_emits_for_replicated_fields(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sku: str,
    outbox_events: Callable[..., Any],
) -> None:
    await create(client, admin, sku, description="keep me")
    renamed = await client.patch(f"{PRODUCTS}/{sku}", json={"name": "Renamed"}, headers=admin)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Renamed"
    assert renamed.json()["description"] == "keep me"

    # Description and reorder point are not replicated: no event for them.
    quiet = await client.patch(
        f"{PRODUCTS}/{sku}", json={"description": None, "reorder_point": 2}, headers=admin
    )
    assert quiet.status_code == 200
    assert quiet.json()["description"] is None

    await client.patch(f"{PRODUCTS}/{sku}", json={"active": False}, headers=admin)
    events = await outbox_events("inventory.product_upserted", lambda d: d["sku"] == sku)
    assert [(e["name"], e["active"]) for e in events] == [
        (f"Product {sku}", True),
        ("Renamed", True),
        ("Renamed", False),
    ]


async def test_patching_an_unknown_product_is_404(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str
) -> None:
    response = await client.patch(f"{PRODUCTS}/{sku}", json={"name": "x"}, headers=admin)
    assert_problem(response, 404)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"sku": "lower-case"}, id="lowercase sku"),
        pytest.param({"sku": "-LEADING-DASH"}, id="sku starting with a dash"),
        pytest.param({"sku": "A"}, id="one-character sku"),
        pytest.param({"sku": "A" * 65}, id="sku of 65 characters"),
        pytest.param({"price": {"amount": -1, "currency": "USD"}}, id="negative price"),
        pytest.param({"price": {"amount": 19.99, "currency": "USD"}}, id="fractional price"),
        pytest.param({"price": {"amount": "1999", "currency": "USD"}}, id="price as a string"),
        pytest.param({"price": {"amount": 1999, "currency": "usd"}}, id="malformed currency"),
        pytest.param({"price": {"amount": 1999, "currency": "EUR"}}, id="not the store currency"),
        pytest.param({"initial_stock": -1}, id="negative stock"),
        pytest.param({"reorder_point": -1}, id="negative reorder point"),
        pytest.param({"name": ""}, id="empty name"),
        pytest.param({"status": "active"}, id="unknown field"),
        pytest.param({"available": 100}, id="read-only field"),
    ],
)
async def test_invalid_products_are_refused_with_422_and_nothing_is_created(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str, overrides: dict[str, Any]
) -> None:
    body = {**product_body(sku), **overrides}
    response = await client.post(PRODUCTS, json=body, headers=admin)
    assert_problem(response, 422)
    for candidate in {sku, str(body["sku"])}:
        response = await client.get(f"{PRODUCTS}/{candidate}")
        assert response.status_code in (404, 422)


@pytest.mark.parametrize(
    "changes",
    [
        {"name": None},
        {"price": None},
        {"active": "yes"},
        {"price": {"amount": 10, "currency": "EUR"}},
        {"sku": "OTHER-SKU"},
        {"available": 3},
    ],
)
async def test_invalid_patches_are_422_and_change_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str, changes: dict[str, Any]
) -> None:
    before = await create(client, admin, sku)
    response = await client.patch(f"{PRODUCTS}/{sku}", json=changes, headers=admin)
    assert_problem(response, 422)
    assert (await client.get(f"{PRODUCTS}/{sku}")).json() == before


async def test_a_price_in_another_currency_is_a_422_naming_the_currency(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str, make_sku: Callable[[], str]
) -> None:
    euros = {"price": {"amount": 1999, "currency": "EUR"}}
    created = await client.post(PRODUCTS, json=product_body(make_sku(), **euros), headers=admin)
    await create(client, admin, sku)
    patched = await client.patch(f"{PRODUCTS}/{sku}", json=euros, headers=admin)
    for response in (created, patched):
        problem = assert_problem(response, 422)
        assert problem["type"] == "/problems/wrong-currency"
        assert [error["loc"] for error in problem["errors"]] == [["body", "price", "currency"]]


async def test_writes_need_an_admin_token(
    client: httpx.AsyncClient,
    customer: dict[str, str],
    sku: str,
    token: Callable[..., str],
) -> None:
    body = product_body(sku)
    anonymous = await client.post(PRODUCTS, json=body)
    assert_problem(anonymous, 401)
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    garbage = await client.post(PRODUCTS, json=body, headers={"Authorization": "Bearer x.y.z"})
    assert_problem(garbage, 401)
    expired = token("admin", exp=1_000_000, iat=999_000)
    late = await client.post(PRODUCTS, json=body, headers={"Authorization": f"Bearer {expired}"})
    assert_problem(late, 401)
    assert_problem(await client.post(PRODUCTS, json=body, headers=customer), 403)
    assert_problem(await client.patch(f"{PRODUCTS}/{sku}", json={"name": "x"}), 401)
    assert (await client.get(f"{PRODUCTS}/{sku}")).status_code == 404


async def test_product_reads_carry_a_strong_etag_and_answer_304_when_unchanged(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str
) -> None:
    await create(client, admin, sku)
    first = await client.get(f"{PRODUCTS}/{sku}")
    etag = first.headers["etag"]
    assert etag.startswith('"')  # strong: no W/ prefix

    unchanged = await client.get(f"{PRODUCTS}/{sku}", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    listed = await client.get(f"{PRODUCTS}/{sku}", headers={"If-None-Match": f'"other", W/{etag}'})
    assert listed.status_code == 304

    await client.patch(f"{PRODUCTS}/{sku}", json={"name": "New name"}, headers=admin)
    changed = await client.get(f"{PRODUCTS}/{sku}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag


async def test_list_pages_through_every_match_with_opaque_cursors(
    client: httpx.AsyncClient, admin: dict[str, str], make_sku: Callable[[], str]
) -> None:
    marker = make_sku().replace("T-", "Z")  # a word only these products' names contain
    skus = sorted(make_sku() for _ in range(5))
    for sku in skus:
        await create(client, admin, sku, name=f"Lamp {marker}")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"q": marker.lower(), "limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(PRODUCTS, params=params)
        assert response.status_code == 200
        page = response.json()
        seen += [item["sku"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == skus
    assert pages == 3


async def test_inactive_products_are_listed_to_admins_only(
    client: httpx.AsyncClient, admin: dict[str, str], customer: dict[str, str], sku: str
) -> None:
    await create(client, admin, sku)
    await client.patch(f"{PRODUCTS}/{sku}", json={"active": False}, headers=admin)
    public = await client.get(PRODUCTS, params={"q": sku})
    assert public.json()["items"] == []
    as_customer = await client.get(PRODUCTS, params={"q": sku}, headers=customer)
    assert as_customer.json()["items"] == []
    private = await client.get(PRODUCTS, params={"q": sku}, headers=admin)
    assert [item["sku"] for item in private.json()["items"]] == [sku]
    assert private.headers["cache-control"] == "private, no-cache"


async def test_an_inactive_product_is_404_to_anonymous_and_customers_and_visible_to_admins(
    client: httpx.AsyncClient, admin: dict[str, str], customer: dict[str, str], sku: str
) -> None:
    await create(client, admin, sku)
    await client.patch(f"{PRODUCTS}/{sku}", json={"active": False}, headers=admin)

    anonymous = assert_problem(await client.get(f"{PRODUCTS}/{sku}"), 404)
    as_customer = assert_problem(await client.get(f"{PRODUCTS}/{sku}", headers=customer), 404)
    missing = assert_problem(await client.get(f"{PRODUCTS}/NO-SUCH-{sku}"), 404)
    # Exactly the answer of a sku that never existed: no oracle of what is being prepared.
    assert anonymous["type"] == as_customer["type"] == missing["type"]
    assert anonymous["title"] == missing["title"]

    seen_by_admin = await client.get(f"{PRODUCTS}/{sku}", headers=admin)
    assert seen_by_admin.status_code == 200
    assert seen_by_admin.json()["active"] is False
    assert seen_by_admin.headers["cache-control"] == "private, no-cache"

    await client.patch(f"{PRODUCTS}/{sku}", json={"active": True}, headers=admin)
    assert (await client.get(f"{PRODUCTS}/{sku}")).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"limit": "+5"},
        {"limit": " 5"},
        {"q": ""},
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    assert_problem(await client.get(PRODUCTS, params=params), 422)


BAD_CURSORS = list(bad_cursors(issued="e30.e30", kind="k", position="p"))


@pytest.mark.parametrize("name", BAD_CURSORS)
async def test_a_cursor_the_server_did_not_issue_is_400_invalid_cursor(
    client: httpx.AsyncClient, admin: dict[str, str], make_sku: Callable[[], str], name: str
) -> None:
    for _ in range(2):
        await create(client, admin, make_sku())
    cursor = (await client.get(PRODUCTS, params={"limit": 1})).json()["next_cursor"]
    assert cursor
    position = (await client.get(PRODUCTS, params={"limit": 1})).json()["items"][0]["sku"]
    bad = bad_cursors(issued=cursor, kind=PRODUCTS_CURSOR, position=position)[name]
    problem = assert_problem(await client.get(PRODUCTS, params={"cursor": bad}), 400)
    assert problem["type"] == "/problems/invalid-cursor"


async def test_a_products_cursor_does_not_page_the_low_stock_list(
    client: httpx.AsyncClient, admin: dict[str, str], make_sku: Callable[[], str]
) -> None:
    for _ in range(2):
        await create(client, admin, make_sku())
    cursor = (await client.get(PRODUCTS, params={"limit": 1})).json()["next_cursor"]
    low_stock = await client.get(
        "/api/v1/inventory/low-stock", params={"cursor": cursor}, headers=admin
    )
    assert assert_problem(low_stock, 400)["type"] == "/problems/invalid-cursor"


async def test_text_with_a_nul_character_is_a_422_never_a_500(
    client: httpx.AsyncClient, admin: dict[str, str], sku: str
) -> None:
    # Found by fuzzing the platform: Postgres cannot store NUL, and the error was a 500.
    created = await client.post(PRODUCTS, json=product_body(sku, name="a\u0000b"), headers=admin)
    assert assert_problem(created, 422)["type"] == "/problems/unstorable-text"
    assert [error["loc"] for error in created.json()["errors"]] == [["body"]]
    searched = assert_problem(await client.get(PRODUCTS, params={"q": "a\x00b"}), 422)
    assert [error["loc"] for error in searched["errors"]] == [["query", "q"]]
    await create(client, admin, sku)
    patched = await client.patch(f"{PRODUCTS}/{sku}", json={"description": "\x00"}, headers=admin)
    assert_problem(patched, 422)


async def test_every_read_answers_head_with_its_status_and_headers_and_no_body(
    client: httpx.AsyncClient, admin: dict[str, str], customer: dict[str, str], sku: str
) -> None:
    await create(client, admin, sku)
    for path in [f"{PRODUCTS}/{sku}", PRODUCTS, f"/api/v1/inventory/{sku}"]:
        got = await client.get(path, headers=admin)
        head = await client.head(path, headers=admin)
        assert (head.status_code, head.content) == (200, b""), path
        for name in ("etag", "cache-control", "vary", "content-type", "content-length"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    tag = (await client.get(f"{PRODUCTS}/{sku}")).headers["etag"]
    unchanged = await client.head(f"{PRODUCTS}/{sku}", headers={"If-None-Match": tag})
    assert (unchanged.status_code, unchanged.headers["etag"]) == (304, tag)
    # Authorization is the GET's.
    assert (await client.head(f"/api/v1/inventory/{sku}")).status_code == 401
    assert (await client.head(f"/api/v1/inventory/{sku}", headers=customer)).status_code == 403
    assert (await client.head(f"{PRODUCTS}/NO-SUCH-SKU")).status_code == 404


async def test_a_method_a_product_does_not_support_is_405_naming_all_it_does(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(f"{PRODUCTS}/ANY-SKU")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD, PATCH"
    assert (await client.put(PRODUCTS)).headers["allow"] == "GET, HEAD, POST"
