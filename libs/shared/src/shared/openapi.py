"""The error answers in OpenAPI: every status a route can give, with the problem+json schema.

Routers declare their statuses with ``problem_responses(401, 404, ...)``; the app's document
gets the ``Problem`` schema once, FastAPI's own 422 (a JSON ``HTTPValidationError`` this
platform never sends) is replaced by the problem+json the error handlers really answer, and
every route with a body documents the 400 of a body that cannot even be decoded.
"""

from __future__ import annotations

import copy
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from shared.errors import PROBLEM_CONTENT_TYPE, Problem

PROBLEM_REF = "#/components/schemas/Problem"
PROBLEM_CONTENT = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}}

Responses = dict[int | str, dict[str, Any]]

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}

# What each status means on this platform; a route may say more with a (status, text) pair.
DESCRIPTIONS = {
    400: "Bad request: a body, header or cursor the server cannot use.",
    401: "No valid bearer token (or bad credentials); see WWW-Authenticate.",
    403: "Authenticated, but not allowed to do this.",
    404: "Not found, or not visible to this caller.",
    409: "Conflicts with the current state of the resource.",
    413: "Request body over the size limit.",
    415: "Unsupported media type.",
    422: "Validation error: `errors` lists each offending field.",
    429: "Too many requests; see Retry-After.",
    503: "Temporarily unavailable (a dependency is down); retry after Retry-After.",
    504: "The service behind the gateway did not answer in time.",
}

_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "The Bearer challenge.",
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}


_UNREADABLE_BODY = "The body cannot be read (not UTF-8 JSON or form data)."


def problem_doc(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object of one problem+json answer."""
    response: dict[str, Any] = {
        "description": description or DESCRIPTIONS.get(status) or HTTPStatus(status).phrase,
        "content": PROBLEM_CONTENT,
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    # A copy each time: documents are edited in place (the gateway's merge), never shared.
    return copy.deepcopy(response)


def problem_responses(*statuses: int | tuple[int, str]) -> Responses:
    """``responses=`` of a route or router: each status answered as problem+json.

    A status is an int, or ``(status, description)`` when the route says more than the
    platform-wide meaning.
    """
    responses: Responses = {}
    for entry in statuses:
        status, description = entry if isinstance(entry, tuple) else (entry, None)
        responses[status] = problem_doc(status, description)
    return responses


def _problem_schemas() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions: dict[str, Any] = schema.pop("$defs", {})
    return {**definitions, "Problem": schema}


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Add the Problem schema, turn FastAPI's default 422 into problem+json and document the
    400 of an unreadable body, in place."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_problem_schemas())
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            if "422" in responses and _is_fastapi_validation_error(responses["422"]):
                responses["422"] = problem_doc(422)
            if "requestBody" in operation:
                # A body that is not UTF-8 (FastAPI: "error parsing the body") is a 400.
                responses.setdefault("400", problem_doc(400, _UNREADABLE_BODY))
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return document


def install_problem_documentation(app: FastAPI) -> None:
    """Make ``app.openapi()`` document the problem+json answers (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
