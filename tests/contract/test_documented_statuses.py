"""Every answer a route can give is in the OpenAPI documents, as problem+json.

Checked on each app's own document and on the gateway's merge of them (built here the way
the gateway builds it, without the network): a client generated from the documents knows
every status it can get. ``make fuzz`` checks the same against the running platform.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config import DEFAULT_ROUTES
from gateway.openapi import document_gateway_answers, merge_documents
from shared.errors import PROBLEM_CONTENT_TYPE
from shared.openapi import PROBLEM_REF
from tests.contract.documents import Document, current_documents

pytestmark = pytest.mark.contracts

PROXIED = list(DEFAULT_ROUTES)
SERVICES = ("inventory", "orders", "payments")


@pytest.fixture(scope="module")
def documents() -> dict[str, Document]:
    return current_documents()


@pytest.fixture(scope="module")
def merged(documents: dict[str, Document]) -> Document:
    document = copy.deepcopy(documents["gateway"])
    for service in SERVICES:
        merge_documents(document, documents[service], PROXIED, service)
    return document_gateway_answers(document, PROXIED)


def operations(document: Document) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method.upper(), operation


def test_every_error_answer_of_every_app_is_documented_as_problem_json(
    documents: dict[str, Document], merged: Document
) -> None:
    for document in [*documents.values(), merged]:
        assert "HTTPValidationError" not in document["components"]["schemas"]
        for path, method, operation in operations(document):
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                assert response["content"] == {
                    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_REF}}
                }, (method, path, status)


def test_every_route_documents_the_statuses_of_its_kind(merged: Document) -> None:
    for path, method, operation in operations(merged):
        if not path.startswith("/api/"):
            continue
        documented = set(operation["responses"])
        # The gateway's rate limiter, a database, and its body limit: a body over it is
        # refused whether or not the route takes one.
        expected = {"413", "429", "503"}
        if "security" in operation:
            expected.add("401")  # a bearer token, when sent, must be valid
        if any(path.startswith(prefix) for prefix in PROXIED):
            expected |= {"401", "504"}  # any invalid token; a service too slow
        if "requestBody" in operation:
            expected |= {"400", "422"}  # unreadable, invalid
        if any(p["name"] == "cursor" for p in operation.get("parameters", [])):
            expected |= {"400", "422"}  # a cursor the server did not issue, a bad limit
        if "{" in path:
            expected |= {"404", "422"}
        missing = expected - documented
        assert not missing, f"{method} {path} does not document {sorted(missing)}"


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/api/v1/products", {"403", "409"}),
        ("PATCH", "/api/v1/products/{sku}", {"403"}),
        ("POST", "/api/v1/products/{sku}/stock-adjustments", {"403", "409"}),
        ("GET", "/api/v1/inventory/low-stock", {"403"}),
        ("GET", "/api/v1/inventory/{sku}", {"403"}),
        ("POST", "/api/v1/orders", {"400", "403", "409"}),
        ("POST", "/api/v1/orders/{order_id}/cancel", {"409"}),
        ("POST", "/api/v1/orders/{order_id}/ship", {"403", "409"}),
        ("POST", "/api/v1/orders/{order_id}/deliver", {"403", "409"}),
        ("POST", "/api/v1/auth/register", {"409"}),
        ("POST", "/api/v1/auth/token", {"401"}),
    ],
)
def test_the_statuses_of_each_routes_own_rules_are_documented(
    merged: Document, method: str, path: str, statuses: set[str]
) -> None:
    documented = set(merged["paths"][path][method.lower()]["responses"])
    assert statuses <= documented, sorted(statuses - documented)


def test_the_jwks_is_documented_with_its_own_media_type(merged: Document) -> None:
    responses = merged["paths"]["/.well-known/jwks.json"]["get"]["responses"]
    assert list(responses["200"]["content"]) == ["application/jwk-set+json"]
