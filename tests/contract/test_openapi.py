"""Each app's OpenAPI document is the committed snapshot; a difference fails, classified."""

from __future__ import annotations

import pytest

from tests.contract.documents import (
    SNAPSHOT_DIR,
    Document,
    committed_document,
    current_documents,
)
from tests.contract.openapi_diff import compare

pytestmark = pytest.mark.contracts

APPS = ("gateway", "inventory", "orders", "payments")


@pytest.fixture(scope="module")
def documents() -> dict[str, Document]:
    return current_documents()


@pytest.mark.parametrize("app", APPS)
def test_the_openapi_document_is_the_committed_snapshot(
    app: str, documents: dict[str, Document]
) -> None:
    committed = committed_document(app)
    assert committed is not None, f"no snapshot of {app}: run `make contracts`"
    if committed == documents[app]:
        return
    changes = compare(committed, documents[app])
    breaking = [change for change in changes if change.breaking]
    verdict = "BREAKING for clients" if breaking else "additive"
    pytest.fail(
        f"the {app} API changed ({verdict}):\n"
        + "\n".join(f"  {change}" for change in changes)
        + "\nif this is on purpose, run `make contracts` and commit the snapshot"
        + (" with a new API version" if breaking else ""),
        pytrace=False,
    )


def test_every_app_has_a_snapshot_and_no_snapshot_is_stale(
    documents: dict[str, Document],
) -> None:
    assert set(documents) == set(APPS)
    assert {path.stem for path in SNAPSHOT_DIR.glob("*.json")} == set(APPS)
