"""Every error is problem+json with the request id, and nothing internal leaks."""

from __future__ import annotations

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request

from shared.errors import UNSTORABLE_TEXT_SQLSTATES, DomainError, FieldError, _database_error
from shared.logging import ContextFilter
from shared.testing import app_client

from .conftest import build_sample_app

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= body.keys()
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/no-such-thing"), 404)
    assert body["title"] == "Not Found"


async def test_wrong_method_is_a_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/widgets/1")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


async def test_invalid_body_is_a_422_with_field_errors(client: httpx.AsyncClient) -> None:
    response = await client.post("/widgets", json={"name": "x", "quantity": "many", "admin": True})
    body = assert_problem(response, 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    locations = {tuple(error["loc"]) for error in errors}
    assert ("body", "quantity") in locations
    assert ("body", "admin") in locations  # unknown fields are refused, not ignored
    assert all(set(error) == {"loc", "msg", "type"} for error in errors)
    assert "many" not in response.text  # the offending input is never echoed


async def test_malformed_json_is_a_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/widgets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


async def test_invalid_path_parameter_is_a_422(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/widgets/abc"), 422)


async def test_unexpected_error_is_a_bare_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(ContextFilter("sample"))
    response = await client.get("/boom")
    body = assert_problem(response, 500)
    for leak in ("secret", "hunter2", "RuntimeError", "Traceback", "File "):
        assert leak not in response.text
    assert body["title"] == "Internal Server Error"
    logged = [record for record in caplog.records if record.exc_info]
    assert logged, "the exception is logged"
    assert getattr(logged[-1], "request_id", None) == body["request_id"]


async def test_domain_error_carries_its_status_title_and_type(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/out-of-stock"), 409)
    assert body == {
        "type": "/problems/out-of-stock",
        "title": "Out of stock",
        "status": 409,
        "detail": "SKU-1 has 0 available.",
        "request_id": body["request_id"],
    }


class _KeyReused(DomainError):
    status = 422
    title = "Key reused"
    type = "/problems/key-reused"
    loc = ("header", "Key")


class _LinesRefused(DomainError):
    status = 422
    title = "Lines refused"
    type = "/problems/lines-refused"


async def test_a_domain_422_names_what_it_refuses_in_errors() -> None:
    app = build_sample_app()

    @app.get("/key-reused")
    async def key_reused() -> None:
        raise _KeyReused("That key was used for another request.")

    @app.get("/lines-refused")
    async def lines_refused() -> None:
        errors = [
            FieldError(loc=["body", "items", index, "sku"], msg="unknown sku", type="unknown")
            for index in (0, 2)
        ]
        raise _LinesRefused("Lines 0 and 2 cannot be ordered.", errors=errors)

    async with app_client(app) as client:
        reused = assert_problem(await client.get("/key-reused"), 422)
        refused = assert_problem(await client.get("/lines-refused"), 422)
    assert reused["errors"] == [
        {
            "loc": ["header", "Key"],
            "msg": "That key was used for another request.",
            "type": "/problems/key-reused",
        }
    ]
    assert refused["errors"] == [
        {"loc": ["body", "items", index, "sku"], "msg": "unknown sku", "type": "unknown"}
        for index in (0, 2)
    ]


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize("sqlstate", sorted(UNSTORABLE_TEXT_SQLSTATES))
async def test_text_postgres_cannot_store_is_the_clients_422(sqlstate: str) -> None:
    # Found by fuzzing the platform: a NUL character in any text field was a 500.
    error = DBAPIError("INSERT ...", {}, _DriverError(sqlstate))
    response = await _database_error(Request({"type": "http", "query_string": b""}), error)
    assert response.status_code == 422
    problem = orjson.loads(bytes(response.body))
    assert problem["type"] == "/problems/unstorable-text"
    assert [error["loc"] for error in problem["errors"]] == [["body"]]


@pytest.mark.parametrize(
    ("scope", "loc"),
    [
        ({"query_string": b"limit=5&q=a%00b"}, ["query", "q"]),
        ({"query_string": b"q=a&q=b%00"}, ["query", "q"]),
        ({"query_string": b"", "path_params": {"sku": "A\x00"}}, ["path", "sku"]),
        ({"query_string": b"q=ab"}, ["body"]),
    ],
)
async def test_unstorable_text_names_the_parameter_that_holds_it(
    scope: dict[str, object], loc: list[str]
) -> None:
    error = DBAPIError("SELECT ...", {}, _DriverError("22021"))
    response = await _database_error(Request({"type": "http", **scope}), error)
    assert [error["loc"] for error in orjson.loads(bytes(response.body))["errors"]] == [loc]


async def test_any_other_database_error_stays_a_server_error() -> None:
    error = DBAPIError("SELECT 1", {}, _DriverError("42P01"))
    with pytest.raises(DBAPIError):
        await _database_error(Request({"type": "http"}), error)


async def test_an_unreachable_database_is_a_503_to_retry_not_a_500() -> None:
    # Found by the platform's fault tests: out of connection slots, every request was a 500.
    error = DBAPIError("SELECT 1", {}, _DriverError("53300"))
    response = await _database_error(Request({"type": "http"}), error)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (asyncpg.CharacterNotInRepertoireError("invalid byte sequence"), 422),
        (asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence"), 422),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), 503),
        (asyncpg.InterfaceError("cannot perform operation: connection is closed"), 503),
        (asyncpg.exceptions.InternalClientError("another operation is in progress"), 503),
    ],
)
async def test_driver_errors_are_answered_as_the_dialects_are(
    error: Exception, status: int
) -> None:
    # Statements on the driver connection (shared.db.driver_connection) raise asyncpg's own
    # errors; the app must answer them as it answers SQLAlchemy's, not with a 500.
    app = build_sample_app()

    @app.get("/driver-error")
    async def driver_error() -> None:
        raise error

    async with app_client(app) as client:
        response = await client.get("/driver-error")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_other_driver_errors_stay_server_errors() -> None:
    with pytest.raises(asyncpg.UndefinedTableError):
        await _database_error(Request({"type": "http"}), asyncpg.UndefinedTableError("no"))
