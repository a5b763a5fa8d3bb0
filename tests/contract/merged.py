"""``python -m tests.contract.merged``: write the gateway's merged OpenAPI to ``docs/openapi.json``.

The document is the one the gateway serves at ``/openapi.json`` (its own routes, each
service's under the prefixes the default route table gives it, and the answers the gateway
adds), built in-process from every app's ``.openapi()``: no server runs. Frontends generate
their clients from the committed file; ``test_merged_openapi`` fails when it is stale.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson

from tests.contract.documents import Document, app_factories, render

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def merged_document() -> Document:
    from gateway.config import DEFAULT_ROUTES, INVENTORY, ORDERS, PAYMENTS
    from gateway.openapi import merged_document as merge
    from gateway.proxy.routes import RouteTable

    factories = app_factories()
    services = {INVENTORY: "inventory", ORDERS: "orders", PAYMENTS: "payments"}

    def served(name: str) -> Document:
        # As the gateway reads it: the JSON a service answers, not FastAPI's Python objects.
        document: Document = orjson.loads(orjson.dumps(factories[name]().openapi()))
        return document

    upstreams = [
        (origin, prefixes, served(services[origin]))
        for origin, prefixes in RouteTable(DEFAULT_ROUTES).upstreams.items()
    ]
    return merge(orjson.loads(orjson.dumps(factories["gateway"]().openapi())), upstreams)


def main() -> int:
    # As the contract tests build the documents (settings default to production otherwise).
    os.environ.setdefault("COMMERCE_ENVIRONMENT", "test")
    rendered = render(merged_document())
    if DOCUMENT_PATH.exists() and DOCUMENT_PATH.read_bytes() == rendered:
        print(f"{DOCUMENT_PATH} is up to date")
        return 0
    DOCUMENT_PATH.write_bytes(rendered)
    print(f"wrote {DOCUMENT_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
