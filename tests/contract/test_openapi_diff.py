"""The classifier of API changes: what breaks a client, and what only adds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.contract.openapi_diff import compare

pytestmark = pytest.mark.contracts

BASE: dict[str, Any] = {
    "paths": {
        "/orders/{id}": {
            "get": {
                "parameters": [
                    {"in": "path", "name": "id", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Order"}}
                        }
                    }
                },
            },
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Input"}}
                    },
                },
                "responses": {"202": {"description": "accepted"}},
            },
        }
    },
    "components": {
        "schemas": {
            "Order": {
                "properties": {
                    "id": {"type": "string"},
                    "status": {"type": "string", "enum": ["pending", "confirmed"]},
                    "total": {"type": "integer"},
                },
                "required": ["id", "status", "total"],
            },
            "Input": {"properties": {"note": {"type": "string"}}, "required": []},
        }
    },
}


def changed(edit: str) -> list[tuple[bool, str]]:
    new = copy.deepcopy(BASE)
    order = new["components"]["schemas"]["Order"]
    inputs = new["components"]["schemas"]["Input"]
    match edit:
        case "remove path":
            del new["paths"]["/orders/{id}"]
        case "remove operation":
            del new["paths"]["/orders/{id}"]["post"]
        case "remove response field":
            del order["properties"]["total"]
        case "remove enum value":
            order["properties"]["status"]["enum"] = ["pending"]
        case "new required input":
            inputs["properties"]["reason"] = {"type": "string"}
            inputs["required"] = ["reason"]
        case "change type":
            order["properties"]["total"] = {"type": "string"}
        case "add path":
            new["paths"]["/payments"] = {"get": {"responses": {}}}
        case "add response field":
            order["properties"]["currency"] = {"type": "string"}
        case "add optional input":
            inputs["properties"]["gift"] = {"type": "boolean"}
        case "add enum value":
            order["properties"]["status"]["enum"] = ["pending", "confirmed", "shipped"]
    return [(change.breaking, change.what) for change in compare(BASE, new)]


@pytest.mark.parametrize(
    "edit",
    [
        "remove path",
        "remove operation",
        "remove response field",
        "remove enum value",
        "new required input",
        "change type",
    ],
)
def test_a_breaking_change_is_reported_as_breaking(edit: str) -> None:
    changes = changed(edit)
    assert changes
    assert any(breaking for breaking, _ in changes), changes


@pytest.mark.parametrize(
    "edit", ["add path", "add response field", "add optional input", "add enum value"]
)
def test_an_additive_change_is_reported_as_additive(edit: str) -> None:
    changes = changed(edit)
    assert changes
    assert not any(breaking for breaking, _ in changes), changes


def test_identical_documents_have_no_changes() -> None:
    assert compare(BASE, copy.deepcopy(BASE)) == []
