"""The OpenAPI document of every app, as ``create_app().openapi()`` builds it, and its
committed snapshot under ``tests/contract/openapi/``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI

SNAPSHOT_DIR = Path(__file__).with_name("openapi")

Document = dict[str, Any]


def app_factories() -> dict[str, Callable[[], FastAPI]]:
    from gateway.main import create_app as gateway
    from inventory.main import create_app as inventory
    from orders.main import create_app as orders
    from payments.main import create_app as payments

    return {"gateway": gateway, "inventory": inventory, "orders": orders, "payments": payments}


def current_documents() -> dict[str, Document]:
    """Each app's own document (the gateway's: identity and JWKS; it serves the merge)."""
    return {name: factory().openapi() for name, factory in app_factories().items()}


def snapshot_path(name: str) -> Path:
    return SNAPSHOT_DIR / f"{name}.json"


def render(document: Document) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def committed_document(name: str) -> Document | None:
    path = snapshot_path(name)
    if not path.exists():
        return None
    document: Document = orjson.loads(path.read_bytes())
    return document


def write_snapshots() -> list[Path]:
    """Rewrite every snapshot that differs; the paths written."""
    SNAPSHOT_DIR.mkdir(exist_ok=True)
    written = []
    for name, document in current_documents().items():
        path = snapshot_path(name)
        rendered = render(document)
        if not path.exists() or path.read_bytes() != rendered:
            path.write_bytes(rendered)
            written.append(path)
    return written
