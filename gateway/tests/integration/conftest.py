"""Fixtures of the identity tests: time travel in the database, clients from many addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from gateway.config import GatewaySettings
from gateway.identity.tokens import hash_refresh_token
from gateway.main import create_app
from shared.db import create_engine

Sql = Callable[..., Awaitable[list[Any]]]


@pytest.fixture
async def sql(database: str, make_settings: Callable[..., GatewaySettings]) -> AsyncIterator[Sql]:
    """``await sql(statement, **params)``: run one statement on the gateway schema, committed;
    its rows, if any. For moving timestamps into the past, not for what the API can do."""
    engine = create_engine(make_settings())

    async def run(statement: str, **params: Any) -> list[Any]:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    try:
        yield run
    finally:
        await engine.dispose()


@pytest.fixture
def age_spent_tokens(sql: Sql) -> Callable[..., Awaitable[None]]:
    """Make a refresh token look spent ``seconds`` earlier than it was."""

    async def age(refresh_token: str, *, seconds: float) -> None:
        await sql(
            "UPDATE gateway.refresh_tokens SET spent_at = spent_at - make_interval(secs => :s)"
            " WHERE token_hash = :h",
            s=seconds,
            h=hash_refresh_token(refresh_token),
        )

    return age


AddressClients = Callable[..., AbstractAsyncContextManager[Callable[[str], httpx.AsyncClient]]]


@pytest.fixture
def gateway_from_addresses(
    database: str, make_settings: Callable[..., GatewaySettings]
) -> AddressClients:
    """``async with gateway_from_addresses(**settings) as client_from``: one started gateway,
    and ``client_from("10.0.0.7")`` a client whose requests come from that address."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
        app: FastAPI = create_app(make_settings(**overrides))
        clients: list[httpx.AsyncClient] = []

        def client_from(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 50_000))
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            clients.append(client)
            return client

        async with app.router.lifespan_context(app):
            try:
                yield client_from
            finally:
                for client in clients:
                    await client.aclose()

    return start
