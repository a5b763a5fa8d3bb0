"""Fixtures of the orders tests: the app on the run's database, tokens, prices, events.

Nothing is mocked: the app talks to the run's Postgres; events are handed to the real
handlers inside a transaction with the inbox key, exactly as the consumer does, or go
through the real broker in the worker tests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from jose import jws
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orders.config import OrdersSettings, get_settings
from orders.events import ProcessedEvent
from orders.handlers import consumers
from orders.main import create_app
from shared.auth import ensure_development_keys, key_id
from shared.contracts import EventPayload, Money
from shared.contracts.inventory import ProductUpserted
from shared.db import create_engine, create_sessionmaker
from shared.messaging import BatchHandler, Envelope, PreparedBatchHandler, PreparedHandler
from shared.messaging.inbox import claim_events, inbox_table
from shared.testing import app_client

ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    headers: dict[str, str]


@pytest.fixture(scope="session")
def settings(database: str) -> OrdersSettings:
    return get_settings()


@pytest.fixture(scope="session")
async def engine(settings: OrdersSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
async def client(settings: OrdersSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings)) as client:
        yield client


def mint_token(settings: OrdersSettings, user_id: uuid.UUID, roles: list[str]) -> str:
    """An access token as the gateway signs it, with the development key the app verifies."""
    private_pem, public_pem = ensure_development_keys(Path(settings.jwt_dev_key_dir))
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "roles": roles,
        "iat": now,
        "exp": now + 900,
        "jti": uuid.uuid4().hex,
    }
    token: str = jws.sign(
        claims, private_pem, headers={"kid": key_id(public_pem), "typ": "JWT"}, algorithm="RS256"
    )
    return token


def _user(settings: OrdersSettings, roles: list[str]) -> User:
    user_id = uuid.uuid4()
    token = mint_token(settings, user_id, roles)
    return User(id=user_id, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def customer(settings: OrdersSettings) -> User:
    return _user(settings, ["customer"])


@pytest.fixture
def other_customer(settings: OrdersSettings) -> User:
    return _user(settings, ["customer"])


@pytest.fixture
def admin(settings: OrdersSettings) -> User:
    return _user(settings, ["admin"])


Deliver = Callable[[Envelope], Awaitable[None]]


@pytest.fixture
def deliver(settings: OrdersSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> Deliver:
    """Hand an event to this service's consumers as the consumer loop does (inbox included)."""
    table = inbox_table(ProcessedEvent)

    async def deliver(event: Envelope) -> None:
        for consumer in consumers(settings):
            handler = consumer.handlers.get(event.type)
            if handler is None:
                continue
            assert not isinstance(handler, PreparedHandler | PreparedBatchHandler)  # all plain
            async with sessionmaker() as session, session.begin():
                claimed = await claim_events(
                    session, table=table, events=[(event.id, event.type)], consumer=consumer.name
                )
                if not claimed:
                    continue
                if isinstance(handler, BatchHandler):
                    await handler.apply(session, [event])
                else:
                    await handler(session, event)

    return deliver


def event(payload: EventPayload) -> Envelope:
    return Envelope.new(payload, correlation_id=uuid.uuid4().hex)


Product = Callable[..., Awaitable[str]]


@pytest.fixture
def product(deliver: Deliver) -> Product:
    """Publish a fresh sku into the price replica (through the real handler); its sku."""

    async def product(
        *, price: int = 1999, active: bool = True, currency: str = "USD", sku: str | None = None
    ) -> str:
        sku = sku or f"SKU-{uuid.uuid4().hex[:12]}"
        await deliver(
            event(
                ProductUpserted(
                    sku=sku,
                    name=f"Product {sku}",
                    price=Money(amount=price, currency=currency),
                    active=active,
                )
            )
        )
        return sku

    return product


TEST_CARD = "tok_visa"  # the fake provider's always-succeeding card


def order_body(*lines: tuple[str, int], token: str = TEST_CARD, **extra: Any) -> dict[str, Any]:
    return {
        "items": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        "payment": {"token": token},
        "shipping_address": dict(ADDRESS),
        **extra,
    }


Place = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
def place(client: httpx.AsyncClient) -> Place:
    """POST /api/v1/orders for ``user`` with a fresh Idempotency-Key unless one is given."""

    async def place(user: User, body: dict[str, Any], *, key: str | None = None) -> httpx.Response:
        headers = {**user.headers, "Idempotency-Key": key or uuid.uuid4().hex}
        return await client.post("/api/v1/orders", json=body, headers=headers)

    return place


OutboxReader = Callable[[uuid.UUID], Awaitable[list[tuple[str, dict[str, Any]]]]]


@pytest.fixture
def outbox_events(engine: AsyncEngine) -> OutboxReader:
    """The events written for one order, oldest first: (type, data)."""

    async def read(order_id: uuid.UUID) -> list[tuple[str, dict[str, Any]]]:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT event_type, body FROM orders.outbox "
                    "WHERE body->'data'->>'order_id' = :order_id ORDER BY created_at, id"
                ),
                {"order_id": str(order_id)},
            )
            return [(row[0], row[1]["data"]) for row in rows]

    return read
