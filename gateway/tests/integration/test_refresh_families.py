"""Refresh families: the grace window, the absolute lifetime, and create-admin's promotions
and password resets revoking every session (issue 21 #9)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from jose import jwt

from gateway.cli import create_admin, main
from gateway.config import GatewaySettings
from gateway.identity.tokens import hash_refresh_token

Tokens = Callable[[], Awaitable[dict[str, Any]]]
Sql = Callable[..., Awaitable[list[Any]]]
PASSWORD = "correct horse battery"  # the conftest's register default


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


async def test_a_spent_token_within_the_grace_window_gets_the_same_refresh_token_back(
    client: httpx.AsyncClient, tokens: Tokens, age_spent_tokens: Any
) -> None:
    first = await tokens()
    rotated = await _refresh(client, first["refresh_token"])
    await age_spent_tokens(first["refresh_token"], seconds=25)  # still inside 30 s
    again = await _refresh(client, first["refresh_token"])
    assert rotated.status_code == again.status_code == 200
    assert again.json()["refresh_token"] == rotated.json()["refresh_token"]
    # A new access token for the same user, and the family lives on.
    assert again.json()["access_token"] != rotated.json()["access_token"]
    claims = jwt.get_unverified_claims(again.json()["access_token"])
    assert claims["sub"] == jwt.get_unverified_claims(first["access_token"])["sub"]
    me = await client.get("/api/v1/auth/me", headers=_bearer(again.json()["access_token"]))
    assert me.status_code == 200
    assert (await _refresh(client, again.json()["refresh_token"])).status_code == 200


async def test_the_grace_window_is_a_setting(
    gateway_client: Any, register: Any, age_spent_tokens: Any
) -> None:
    async with gateway_client(refresh_reuse_grace_seconds=5) as client:
        email, password = await register()
        login = await client.post(
            "/api/v1/auth/token", data={"username": email, "password": password}
        )
        first = login.json()["refresh_token"]
        assert (await _refresh(client, first)).status_code == 200
        await age_spent_tokens(first, seconds=6)
        assert (await _refresh(client, first)).status_code == 401


async def test_a_family_older_than_its_absolute_lifetime_cannot_refresh(
    client: httpx.AsyncClient, tokens: Tokens, sql: Sql
) -> None:
    # Refreshed every day, a family would otherwise live forever.
    young, old = await tokens(), await tokens()
    await sql(
        "UPDATE gateway.refresh_tokens"
        " SET family_created_at = now() - interval '2592060 seconds' WHERE token_hash = :h",
        h=hash_refresh_token(old["refresh_token"]),
    )
    assert (await _refresh(client, young["refresh_token"])).status_code == 200
    refused = await _refresh(client, old["refresh_token"])
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"


async def test_a_rotated_token_never_expires_after_its_family(
    client: httpx.AsyncClient, tokens: Tokens, sql: Sql
) -> None:
    first = await tokens()
    await sql(
        "UPDATE gateway.refresh_tokens"
        " SET family_created_at = now() - interval '29 days' WHERE token_hash = :h",
        h=hash_refresh_token(first["refresh_token"]),
    )
    rotated = await _refresh(client, first["refresh_token"])
    [(expires_at, family_ends_at)] = await sql(
        "SELECT expires_at, family_created_at + interval '2592000 seconds'"
        " FROM gateway.refresh_tokens WHERE token_hash = :h",
        h=hash_refresh_token(rotated.json()["refresh_token"]),
    )
    assert expires_at == family_ends_at  # not 14 days from now


async def _register_and_login(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    registered = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    return await _login(client, email, PASSWORD)


async def _login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _email(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}@example.com"


async def test_create_admin_refuses_an_existing_customer_without_promote_and_changes_nothing(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # Whoever registered the address first (an attacker, perhaps) must not become an admin
    # by an operator's mistake.
    email = _email("squatter")
    session = await _register_and_login(client, email)
    code = await asyncio.to_thread(
        main, ["create-admin", "--email", email, "--password", "the operators password"]
    )
    assert code != 0
    assert "--promote" in capsys.readouterr().err
    me = await client.get("/api/v1/auth/me", headers=_bearer(session["access_token"]))
    assert me.json()["roles"] == ["customer"]
    assert (await _refresh(client, session["refresh_token"])).status_code == 200
    assert (await _login(client, email, PASSWORD))["access_token"]  # same password


async def test_promote_makes_an_admin_and_revokes_every_session_of_the_account(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    email = _email("customer")
    first = await _register_and_login(client, email)
    second = await _login(client, email, PASSWORD)
    code = await asyncio.to_thread(
        main,
        ["create-admin", "--email", email, "--password", "the operators password", "--promote"],
    )
    assert code == 0
    assert "promoted" in capsys.readouterr().out
    # Neither earlier login can mint (admin) tokens any more, and the old password is void.
    assert (await _refresh(client, first["refresh_token"])).status_code == 401
    assert (await _refresh(client, second["refresh_token"])).status_code == 401
    old_password = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
    )
    assert old_password.status_code == 401
    admin = await _login(client, email, "the operators password")
    assert "admin" in jwt.get_unverified_claims(admin["access_token"])["roles"]


async def test_a_family_from_before_a_promotion_stays_dead_even_if_its_token_was_not_revoked(
    client: httpx.AsyncClient, make_settings: Callable[..., GatewaySettings], sql: Sql
) -> None:
    # A refresh racing the promotion can rotate a token the revocation did not see; the
    # user's session generation still ends its family.
    email = _email("racer")
    session = await _register_and_login(client, email)
    await create_admin(make_settings(), email=email, password=PASSWORD + " 2", promote=True)
    await sql(
        "UPDATE gateway.refresh_tokens SET revoked_at = NULL WHERE token_hash = :h",
        h=hash_refresh_token(session["refresh_token"]),
    )
    assert (await _refresh(client, session["refresh_token"])).status_code == 401


async def test_create_admin_again_with_the_same_password_changes_nothing_and_keeps_sessions(
    client: httpx.AsyncClient, make_settings: Callable[..., GatewaySettings]
) -> None:
    # `make seed` runs it on every `make dev`.
    email = _email("admin")
    created = await create_admin(make_settings(), email=email, password="admin password 123")
    assert "created" in created
    session = await _login(client, email, "admin password 123")
    again = await create_admin(make_settings(), email=email, password="admin password 123")
    assert "unchanged" in again
    assert (await _refresh(client, session["refresh_token"])).status_code == 200


async def test_create_admin_with_another_password_resets_it_and_revokes_sessions(
    client: httpx.AsyncClient, make_settings: Callable[..., GatewaySettings]
) -> None:
    email = _email("admin")
    await create_admin(make_settings(), email=email, password="admin password 123")
    session = await _login(client, email, "admin password 123")
    reset = await create_admin(make_settings(), email=email, password="a new admin password")
    assert "password reset" in reset
    assert "1 session(s) revoked" in reset
    assert (await _refresh(client, session["refresh_token"])).status_code == 401
    assert (await _login(client, email, "a new admin password"))["access_token"]
