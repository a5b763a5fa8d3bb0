"""``python -m tests.contract.update``: rewrite the contract snapshots on purpose.

The OpenAPI documents of every app land in ``tests/contract/openapi/``, and the gateway's
merged document in ``docs/openapi.json`` (as ``make openapi`` writes it); the event schemas
are exported by ``shared.contracts`` into its own snapshot folder (one copy, read by the
contract tests), which still refuses an incompatible rewrite of a published event version.
"""

from __future__ import annotations

import os
import sys

from shared.contracts.__main__ import main as export_events
from tests.contract import merged
from tests.contract.documents import write_snapshots


def main() -> int:
    # As the contract tests build the documents (settings default to production otherwise).
    os.environ.setdefault("COMMERCE_ENVIRONMENT", "test")
    for path in write_snapshots():
        print(f"wrote {path}")
    merged.main()
    return export_events(["export"])


if __name__ == "__main__":
    sys.exit(main())
