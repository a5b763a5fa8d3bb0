"""Fixtures of the inventory tests: the run's database, an app, tokens, sessions."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jws
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from inventory.config import InventorySettings
from inventory.events import OutboxEvent
from inventory.main import create_app
from shared.auth import key_id
from shared.db import create_engine, create_sessionmaker
from shared.testing import app_client

_PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _PRIVATE_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = (
    _PRIVATE_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def mint_token(*roles: str, user_id: uuid.UUID | None = None, **claims: Any) -> str:
    """An access token as the gateway signs one, with this run's test key."""
    now = int(time.time())
    payload = {
        "iss": "commerce-gateway",
        "aud": "commerce-api",
        "sub": str(user_id or uuid.uuid4()),
        "roles": list(roles),
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    token: str = jws.sign(
        orjson.dumps(payload), PRIVATE_PEM, headers={"kid": key_id(PUBLIC_PEM)}, algorithm="RS256"
    )
    return token


def new_sku() -> str:
    return f"T-{uuid.uuid4().hex[:12].upper()}"


@pytest.fixture
def make_sku() -> Callable[[], str]:
    """Fresh skus: tests share the run's database and never see each other's products."""
    return new_sku


@pytest.fixture
def sku() -> str:
    return new_sku()


@pytest.fixture(scope="session")
def token() -> Callable[..., str]:
    return mint_token


@pytest.fixture(scope="session")
def settings(database: str) -> InventorySettings:
    # 20 connections let 60 concurrent orders really contend for the same rows while
    # leaving the shared server's connection slots to other test runs; the rest queue.
    return InventorySettings(
        jwt_public_keys=PUBLIC_PEM,
        db_pool_size=10,
        db_max_overflow=10,
        db_pool_timeout_seconds=120,
    )


@pytest.fixture(scope="session")
async def client(settings: InventorySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="session")
async def engine(settings: InventorySettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token('admin')}"}


@pytest.fixture(scope="session")
def customer() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token('customer')}"}


@pytest.fixture
def outbox_events(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[[str, Callable[[dict[str, Any]], bool]], Any]:
    """``await outbox_events(type, predicate)``: the data of matching outbox rows, in order."""

    async def read(event_type: str, where: Callable[[dict[str, Any]], bool]) -> list[Any]:
        async with sessionmaker() as session:
            rows = await session.execute(
                select(OutboxEvent.body)
                .where(OutboxEvent.event_type == event_type)
                .order_by(OutboxEvent.created_at, OutboxEvent.id)
            )
            return [body["data"] for (body,) in rows if where(body["data"])]

    return read
