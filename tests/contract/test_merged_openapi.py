"""``docs/openapi.json``, what frontends generate their clients from, is the document the
gateway serves at ``/openapi.json``, as of this commit."""

from __future__ import annotations

import pytest

from tests.contract.documents import render
from tests.contract.merged import DOCUMENT_PATH, merged_document

pytestmark = pytest.mark.contracts


def test_docs_openapi_json_is_the_gateway_merged_document_of_this_commit() -> None:
    assert DOCUMENT_PATH.exists(), "docs/openapi.json is missing: run `make openapi`"
    if DOCUMENT_PATH.read_bytes() != render(merged_document()):
        pytest.fail(
            "docs/openapi.json is stale (the gateway's merged OpenAPI changed): "
            "run `make openapi` and commit it",
            pytrace=False,
        )


def test_the_merged_document_has_every_service_route_under_its_gateway_prefix() -> None:
    paths = merged_document()["paths"]
    for path in ("/api/v1/auth/token", "/api/v1/products", "/api/v1/orders", "/api/v1/payments"):
        assert path in paths
    assert not [path for path in paths if path.startswith(("/healthz", "/readyz", "/metrics"))]
