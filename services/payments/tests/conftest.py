"""Fixtures of the payments tests: settings, the run's database, signed tokens."""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jws
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from payments.config import PaymentsSettings
from shared.auth import key_id
from shared.db import create_engine, create_sessionmaker

_namespaces = itertools.count(1)


@dataclass(frozen=True)
class SigningKey:
    """The test run's stand-in for the gateway's signing key."""

    private_pem: str
    public_pem: str

    def token(self, user_id: uuid.UUID, *roles: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "commerce-gateway",
            "aud": "commerce-api",
            "sub": str(user_id),
            "roles": list(roles),
            "iat": now,
            "exp": now + 600,
            "jti": uuid.uuid4().hex,
        }
        signed: str = jws.sign(
            orjson.dumps(claims),
            self.private_pem,
            algorithm="RS256",
            headers={"kid": key_id(self.public_pem)},
        )
        return signed

    def headers(self, user_id: uuid.UUID, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id, *roles)}"}


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return SigningKey(private_pem=private_pem, public_pem=public_pem)


def make_settings(signing_key: SigningKey, **overrides: object) -> PaymentsSettings:
    """Settings on the run's database with a namespace of their own and quick retries."""
    namespace = f"{os.environ['COMMERCE_BROKER_NAMESPACE']}.payments{next(_namespaces)}"
    values: dict[str, object] = {
        "broker_namespace": namespace,
        "jwt_public_keys": signing_key.public_pem,
        "provider_max_attempts": 3,
        "provider_backoff_initial_seconds": 0.001,
        "provider_backoff_max_seconds": 0.002,
        "broker_delivery_limit": 3,
        "outbox_poll_interval_seconds": 0.2,
        "worker_shutdown_timeout_seconds": 10.0,
    }
    values.update(overrides)
    return PaymentsSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(signing_key: SigningKey) -> PaymentsSettings:
    return make_settings(signing_key)


@pytest.fixture(scope="session")
async def engine(database: str, signing_key: SigningKey) -> AsyncIterator[AsyncEngine]:
    """The service's own engine (role ``payments``) on the run's migrated database."""
    engine = create_engine(make_settings(signing_key))
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A sessionmaker on an emptied payments schema: every test starts from nothing."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "TRUNCATE payments.payments, payments.fake_provider_charges, "
                "payments.fake_provider_refunds, payments.outbox, payments.processed_events"
            )
        )
    return create_sessionmaker(engine)
