"""Every event's JSON Schema is its committed snapshot (in ``shared/contracts/snapshots``,
the one copy); a difference fails and says whether it would break a reader or a writer."""

from __future__ import annotations

import pytest

import shared.contracts  # noqa: F401  (registers every contract)
from shared.contracts.schemas import (
    SNAPSHOT_DIR,
    committed_schemas,
    current_schemas,
    incompatibilities,
)

pytestmark = pytest.mark.contracts


def test_every_event_schema_is_its_committed_snapshot() -> None:
    committed, current = committed_schemas(SNAPSHOT_DIR), current_schemas()
    findings = [
        f"BREAKING: {name}: snapshot without a contract"
        for name in committed.keys() - current.keys()
    ]
    findings += [
        f"additive: {name}: new event contract" for name in current.keys() - committed.keys()
    ]
    for name in sorted(committed.keys() & current.keys()):
        if committed[name] == current[name]:
            continue
        problems = incompatibilities(committed[name], current[name])
        findings += [f"BREAKING: {name}: {problem}" for problem in problems] or [
            f"additive: {name}: compatible change"
        ]
    assert not findings, (
        "event contracts changed:\n  "
        + "\n  ".join(findings)
        + "\nif on purpose: `make contracts` (a breaking change needs a new event version)"
    )
