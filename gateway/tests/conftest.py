"""Gateway test fixtures: real Postgres, real Redis, real upstream HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import gzip
import random
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from gateway.config import GatewaySettings
from gateway.main import create_app
from gateway.server import bind, build_server
from shared.testing import app_client
from shared.testing.ports import free_port

UPSTREAM_OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Inventory", "version": "1.0.0"},
    "paths": {
        "/api/v1/products": {"get": {"summary": "List products", "responses": {}}},
        "/api/v1/products/{sku}": {
            "get": {
                "summary": "Get product",
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/UserOut"}}
                        }
                    }
                },
            }
        },
        "/internal/debug": {"get": {"summary": "Not public", "responses": {}}},
    },
    "components": {
        "schemas": {"UserOut": {"type": "object", "properties": {"sku": {"type": "string"}}}}
    },
}
BIG_BODY_BYTES = 3 * 1024 * 1024
# Answered by the upstream already gzipped (random, so still over the gzip threshold once
# compressed): the gateway must not compress it again.
ENCODED_TEXT = random.Random(7).randbytes(4096)
TAGGED_PAD = 4000


async def _send_json(send: Send, status: int, payload: Any, headers: list[Any]) -> None:
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def echo_upstream(scope: Scope, receive: Receive, send: Send) -> None:
    """An upstream that answers what it received: method, path, query, headers, body."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    path: str = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    if path == "/openapi.json":
        await _send_json(send, 200, UPSTREAM_OPENAPI, [])
        return
    if path.endswith("/slow"):
        await asyncio.sleep(float(query.get("seconds", ["5"])[0]))
    if path.endswith("/big"):
        # No Content-Length: the gateway must stream it.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(BIG_BODY_BYTES // 65536):
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path.endswith("/encoded"):
        body = gzip.compress(ENCODED_TEXT)
        headers = [(b"content-encoding", b"gzip"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if path.endswith("/events"):
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for number in range(100):
            event = f"data: event {number:03} of a stream\n\n".encode()
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path.endswith("/tagged"):
        # A representation with a strong ETag, large enough to be gzipped, as inventory
        # answers a product: 304 when If-None-Match names it (weak comparison).
        # Its 304 carries what its 200 does, bar the body's own headers (RFC 9110 15.4.5).
        validators = [(b"etag", b'"v1-tagged"'), (b"cache-control", b"public, max-age=60")]
        tags = dict(scope["headers"]).get(b"if-none-match", b"")
        if tags.strip() == b"*" or b'"v1-tagged"' in [
            tag.strip().removeprefix(b"W/") for tag in tags.split(b",")
        ]:
            await send({"type": "http.response.start", "status": 304, "headers": validators})
            await send({"type": "http.response.body", "body": b""})
            return
        await _send_json(send, 200, {"description": "a" * TAGGED_PAD}, validators)
        return
    if path.endswith("/image"):
        headers = [(b"content-type", b"image/png"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": bytes(4096)})
        return
    if path.endswith("/nothing"):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    status = int(query.get("status", ["200"])[0])
    await _send_json(
        send,
        status,
        {
            "method": scope["method"],
            "path": path,
            "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "body": b"".join(chunks).decode(),
        },
        [(b"x-upstream", b"echo"), (b"keep-alive", b"timeout=5"), (b"x-request-id", b"upstream")],
    )


@pytest.fixture
def encoded_text() -> bytes:
    """What the upstream answers, gzipped, on a path ending in ``/encoded``."""
    return ENCODED_TEXT


@pytest.fixture(scope="session")
async def upstream_url() -> AsyncIterator[str]:
    """A real HTTP server (uvicorn) on a free loopback port, for the whole run."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(echo_upstream, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def serving(settings: GatewaySettings) -> AsyncIterator[GatewaySettings]:
    """The gateway as it runs in production (``gateway.server``: uvicorn, the compat
    protocol, a public and an internal port), in this process; its settings."""
    server = build_server(settings)
    sockets = bind(settings)
    task = asyncio.create_task(server.serve(sockets))
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    try:
        yield settings
    finally:
        server.should_exit = True
        await task
        for sock in sockets:
            sock.close()


@pytest.fixture
def served_gateway(
    database: str, make_settings: Callable[..., GatewaySettings]
) -> Callable[..., AbstractAsyncContextManager[GatewaySettings]]:
    """``async with served_gateway(**settings) as settings``: the gateway on real sockets at
    ``settings.port`` and ``settings.internal_port`` (127.0.0.1)."""

    def start(**overrides: Any) -> AbstractAsyncContextManager[GatewaySettings]:
        values = {"port": free_port(), "internal_port": free_port(), **overrides}
        return serving(make_settings(**values))

    return start


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


GenerousLimits = {
    "rate_limit_api": "100000/second",
    "rate_limit_login_per_address": "100000/minute",
    "rate_limit_login_failures_per_account": "100000/minute",
    "rate_limit_login_failures_per_known_address": "100000/minute",
    "rate_limit_auth_per_address": "100000/minute",
}


@pytest.fixture
def make_settings(key_dir: Path, upstream_url: str) -> Callable[..., GatewaySettings]:
    def make(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "jwt_dev_key_dir": str(key_dir),
            "routes": {
                "/api/v1/products": upstream_url,
                "/api/v1/orders": upstream_url,
                "/api/v1/payments": f"http://127.0.0.1:{free_port()}",  # nobody listens
            },
            **GenerousLimits,
            **overrides,
        }
        return GatewaySettings(**values)

    return make


GatewayClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def gateway_client(database: str, make_settings: Callable[..., GatewaySettings]) -> GatewayClient:
    """``async with gateway_client(**settings) as client``: a started gateway, in process."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        app: FastAPI = create_app(make_settings(**overrides))
        async with app_client(app) as client:
            yield client

    return start


@pytest.fixture
async def client(gateway_client: GatewayClient) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client() as client:
        yield client


Internal = Callable[[httpx.AsyncClient], httpx.AsyncClient]


@pytest.fixture
def internal() -> Internal:
    """``internal(client)``: a client of the same in-process gateway arriving on its internal
    port (ASGI's ``scope["server"]`` is the URL's host and port), for /health and /metrics."""

    def on_internal_port(client: httpx.AsyncClient) -> httpx.AsyncClient:
        port = GatewaySettings.model_fields["internal_port"].default
        transport = client._transport
        return httpx.AsyncClient(transport=transport, base_url=f"http://testserver:{port}")

    return on_internal_port


Register = Callable[..., Awaitable[tuple[str, str]]]


@pytest.fixture
def register(client: httpx.AsyncClient) -> Register:
    """Register a fresh user; its (email, password)."""

    async def register(password: str = "correct horse battery") -> tuple[str, str]:  # noqa: S107
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        response = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )
        assert response.status_code == 201, response.text
        return email, password

    return register


Login = Callable[[str, str], Awaitable[httpx.Response]]


@pytest.fixture
def login(client: httpx.AsyncClient) -> Login:
    async def login(email: str, password: str) -> httpx.Response:
        return await client.post(
            "/api/v1/auth/token", data={"username": email, "password": password}
        )

    return login


@pytest.fixture
def tokens(register: Register, login: Login) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A fresh user's token response."""

    async def tokens() -> dict[str, Any]:
        email, password = await register()
        response = await login(email, password)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return tokens
