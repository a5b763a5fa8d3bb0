"""RFC 9457 problem details: the one error shape every endpoint answers with."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.context import current_request_id
from shared.db import database_unavailable
from shared.methods import allowed_methods

PROBLEM_CONTENT_TYPE = "application/problem+json"
GENERIC_PROBLEM_TYPE = "about:blank"

logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """The body of every error response."""

    type: str = GENERIC_PROBLEM_TYPE
    title: str
    status: int
    detail: str
    request_id: str | None = None
    errors: list[FieldError] | None = Field(
        default=None,
        description="On every 422: each offending part of the request, by its location.",
    )


class DomainError(Exception):
    """Base of every error a service raises on purpose; routers need not map it by hand.

    A 422 names what it refuses: ``errors``, or a class-wide ``loc`` for one offending part.
    """

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad Request"
    type: ClassVar[str] = GENERIC_PROBLEM_TYPE
    loc: ClassVar[tuple[str | int, ...] | None] = None

    def __init__(
        self,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        if errors is None and self.loc is not None:
            errors = [FieldError(loc=list(self.loc), msg=detail, type=self.type)]
        self.errors = errors


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = GENERIC_PROBLEM_TYPE,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> Response:
    """A problem answer; ``request_id`` (also sent as ``X-Request-ID``) only for an answer
    given outside ``RequestContextMiddleware``, which otherwise provides both."""
    problem = Problem(
        type=type_,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        request_id=request_id or current_request_id(),
        errors=errors,
    )
    if request_id is not None:
        headers = {**(headers or {}), "X-Request-ID": request_id}
    body = orjson.dumps(problem.model_dump(exclude_none=True))
    return Response(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


def internal_error_response() -> Response:
    """A 500 that says nothing about the internals."""
    return problem_response(500, "An unexpected error occurred; it has been logged.")


def _field_errors(raw: list[dict[str, Any]]) -> list[FieldError]:
    # Only loc, msg and type: pydantic also reports the offending input, which may be a
    # password or a token and must never be echoed back.
    return [
        FieldError(loc=list(error["loc"]), msg=str(error["msg"]), type=str(error["type"]))
        for error in raw
    ]


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _field_errors(list(exc.errors()))
    return problem_response(
        422,
        "The request is not valid; see errors.",
        title="Validation Error",
        type_="/problems/validation-error",
        errors=errors,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names the methods of the first route whose path matched, not all of them.
        allow = allowed_methods(request.app.router.routes, request.scope)
        headers = {**(headers or {}), "Allow": allow}
    return problem_response(exc.status_code, detail, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problem_response(
        exc.status,
        exc.detail,
        title=exc.title,
        type_=exc.type,
        errors=exc.errors,
        headers=exc.headers,
    )


# Text Postgres cannot store: a NUL character (22021) in text or a \u0000 escape in JSONB
# (22P05). Any string field lets a client send one; it is their input, not a server fault.
UNSTORABLE_TEXT_SQLSTATES = frozenset({"22021", "22P05"})
UNSTORABLE_TEXT_TYPE = "/problems/unstorable-text"


def _unstorable_text_loc(request: Request) -> list[str | int]:
    # The database does not say which value it refused: a query or path parameter with a
    # NUL is named; otherwise it came in the body (no header can carry a NUL).
    parameters = [
        *(("query", name, value) for name, value in request.query_params.multi_items()),
        *(("path", name, value) for name, value in request.path_params.items()),
    ]
    for source, name, value in parameters:
        if isinstance(value, str) and "\x00" in value:
            return [source, name]
    return ["body"]


_DATABASE_ERRORS = (
    DBAPIError,
    PoolTimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


async def _database_error(request: Request, exc: Exception) -> Response:
    # SQLAlchemy's errors, or asyncpg's own from statements on the driver connection
    # (``shared.db.driver_connection``): the same rules for both.
    assert isinstance(exc, _DATABASE_ERRORS)
    if database_unavailable(exc):
        # Not a fault of this request, and gone in a moment: a client may retry (with its
        # Idempotency-Key), so say so instead of a 500.
        logger.warning("database unavailable: %r", exc)
        return problem_response(
            503, "The database is unavailable; retry shortly.", headers={"Retry-After": "1"}
        )
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(cause, "sqlstate", None) in UNSTORABLE_TEXT_SQLSTATES:
        detail = "The request holds text that cannot be stored, such as a NUL character."
        return problem_response(
            422,
            detail,
            title="Unstorable Text",
            type_=UNSTORABLE_TEXT_TYPE,
            errors=[
                FieldError(loc=_unstorable_text_loc(request), msg=detail, type=UNSTORABLE_TEXT_TYPE)
            ],
        )
    raise exc  # any other database failure is ours: logged and answered as a bare 500


def install_error_handlers(app: FastAPI) -> None:
    """Answer validation, HTTP and domain errors as problem+json.

    Unexpected exceptions are turned into a bare 500 by ``RequestContextMiddleware``, which
    also logs them with the request id.
    """
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DomainError, _domain_error)
    for error in _DATABASE_ERRORS:
        app.add_exception_handler(error, _database_error)
