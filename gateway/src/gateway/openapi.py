"""One API document for the storefront: the gateway's routes merged with the services'.

The services' documents are fetched from their ``/openapi.json`` through the gateway's
upstream pool and cached; a service that does not answer is left out until it does. The
answers the gateway gives on its own (rate limits, body limit, token check, an upstream
out of reach) are added to every route they can reach, so the document lists every status.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, JSONResponse

from gateway.proxy.http1 import UpstreamError
from gateway.proxy.middleware import API_PREFIX
from gateway.runtime import GatewayRuntime
from shared.openapi import problem_doc

logger = logging.getLogger(__name__)

BEARER_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
_FETCH_TIMEOUT_SECONDS = 3.0
_RETRY_MISSING_SECONDS = 5.0  # a service that did not answer is asked again this soon


def _served_by(path: str, prefixes: list[str]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def _rewrite_refs(node: Any, renamed: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                renamed.get(value, value)
                if key == "$ref" and isinstance(value, str)
                else _rewrite_refs(value, renamed)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item, renamed) for item in node]
    return node


def merge_documents(
    base: dict[str, Any], upstream: dict[str, Any], prefixes: list[str], service: str
) -> None:
    """Add ``upstream``'s paths under ``prefixes`` and its schemas to ``base``.

    A schema whose name is taken by a different schema is renamed ``<service>.<name>``,
    and the references to it follow.
    """
    components = base.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    theirs: dict[str, Any] = upstream.get("components", {}).get("schemas", {})
    renamed = {
        f"#/components/schemas/{name}": f"#/components/schemas/{service}.{name}"
        for name, schema in theirs.items()
        if name in schemas and schemas[name] != schema
    }
    upstream = _rewrite_refs(upstream, renamed)
    for name, schema in upstream.get("components", {}).get("schemas", {}).items():
        key = f"{service}.{name}" if f"#/components/schemas/{name}" in renamed else name
        schemas[key] = schema
    for name, scheme in upstream.get("components", {}).get("securitySchemes", {}).items():
        components.setdefault("securitySchemes", {}).setdefault(name, scheme)
    paths: dict[str, Any] = base.setdefault("paths", {})
    for path, item in upstream.get("paths", {}).items():
        if _served_by(path, prefixes):
            paths[path] = item


def _add(responses: dict[str, Any], status: int, description: str | None = None) -> None:
    # A route's own description of a status wins: it says more than the gateway's.
    responses.setdefault(str(status), problem_doc(status, description))


def document_gateway_answers(document: dict[str, Any], proxied: list[str]) -> dict[str, Any]:
    """Add to every ``/api/`` operation of ``document`` the statuses the gateway answers
    before (or instead of) the route: 429 and 503 from the rate limiter and 413 from the
    body limit on all of them (a body over it is refused whether or not the route takes
    one), and on the routes it proxies (under
    ``proxied``) 401 for an invalid token, even on a public route, and 503/504 for a
    service out of reach or too slow. In place; returns ``document``."""
    for path, item in document.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            _add(responses, 413)
            _add(responses, 429)
            if _served_by(path, proxied):
                _add(responses, 401, "The bearer token, if any is sent, is not valid.")
                _add(responses, 503, "The service, the database or the rate limiter is out.")
                _add(responses, 504)
            else:
                _add(responses, 503, "The database or the rate limiter is out.")
    return document


def merged_document(
    own: dict[str, Any], upstreams: list[tuple[str, list[str], dict[str, Any]]]
) -> dict[str, Any]:
    """The gateway's ``own`` document with each upstream's ``(origin, prefixes, document)``
    merged in, as ``/openapi.json`` serves it; pure, so ``make openapi`` builds the same
    document without a running service. ``own`` is not changed."""
    merged = copy.deepcopy(own)
    merged["info"]["description"] = (
        "The whole public API of the shop, through the gateway. Authenticate with "
        "`POST /api/v1/auth/token` and send `Authorization: Bearer <access_token>`."
    )
    for origin, prefixes, document in upstreams:
        service = str(document.get("info", {}).get("title", origin)).lower()
        merge_documents(merged, document, prefixes, service.replace(" ", "-"))
    schemes = merged.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.setdefault("HTTPBearer", BEARER_SCHEME)
    proxied = [prefix for _, prefixes, _ in upstreams for prefix in prefixes]
    return document_gateway_answers(merged, proxied)


class MergedOpenAPI:
    def __init__(self, app: FastAPI, runtime: GatewayRuntime) -> None:
        self.app = app
        self.runtime = runtime
        self.cache_seconds = runtime.settings.openapi_cache_seconds
        self._document: dict[str, Any] | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self, upstream: str) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(_FETCH_TIMEOUT_SECONDS):
                status, body = await self.runtime.upstreams.get(upstream, "/openapi.json")
            if status != 200:
                return None
            document: dict[str, Any] = orjson.loads(body)
            return document
        except (UpstreamError, TimeoutError, ValueError) as exc:
            logger.warning("no OpenAPI document from %s: %r", upstream, exc)
            return None

    async def document(self) -> dict[str, Any]:
        async with self._lock:
            if self._document is not None and time.monotonic() < self._expires:
                return self._document
            upstreams = self.runtime.routes.upstreams
            documents = await asyncio.gather(*(self._fetch(origin) for origin in upstreams))
            served = [
                (origin, prefixes, document)
                for (origin, prefixes), document in zip(upstreams.items(), documents, strict=True)
                if document is not None
            ]
            complete = len(served) == len(upstreams)
            merged = merged_document(self.app.openapi(), served)
            self._document = merged
            ttl = self.cache_seconds
            if not complete:
                ttl = min(ttl, _RETRY_MISSING_SECONDS)
            self._expires = time.monotonic() + ttl
            return merged


def install_docs(app: FastAPI, runtime: GatewayRuntime) -> None:
    """Replace FastAPI's own /openapi.json and /docs by the merged ones (or none at all)."""
    own = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) not in own
    ]
    build = app.openapi

    def own_document() -> dict[str, Any]:
        # The gateway's own routes (identity) meet the rate limiter and body limit too.
        if app.openapi_schema is None:
            app.openapi_schema = document_gateway_answers(build(), [])
        return app.openapi_schema

    app.openapi = own_document  # type: ignore[method-assign]
    if not runtime.settings.docs_served:
        return
    merged = MergedOpenAPI(app, runtime)

    async def openapi_json() -> JSONResponse:
        return JSONResponse(await merged.document())

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Commerce API")

    app.add_api_route("/openapi.json", openapi_json, include_in_schema=False)
    app.add_api_route("/docs", docs, include_in_schema=False)
