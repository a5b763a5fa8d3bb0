"""Register, log in, refresh with rotation and reuse detection, log out, me, admin command."""

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

Tokens = Callable[[], Awaitable[dict[str, Any]]]
AgeTokens = Callable[..., Awaitable[None]]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_answers_the_user_with_the_customer_role(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "  Ada.Lovelace@Example.COM ", "password": "analytical engine 1843"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "roles"}
    assert body["email"] == "ada.lovelace@example.com"
    assert body["roles"] == ["customer"]
    uuid.UUID(body["id"])


async def test_a_taken_email_is_409_whatever_its_case(client: httpx.AsyncClient) -> None:
    email = f"taken-{uuid.uuid4().hex[:8]}@example.com"
    first = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": "first password ok"}
    )
    again = await client.post(
        "/api/v1/auth/register", json={"email": email.upper(), "password": "second password ok"}
    )
    assert first.status_code == 201
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["status"] == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": "aaaaaaaaaaaaaaaa"}, "password"),
        ({"email": "a@example.com", "password": "x" * 129}, "password"),
        ({"email": "not-an-email", "password": "long enough password"}, "email"),
        ({"email": "a@example.com"}, "password"),
        (
            {"email": "a@example.com", "password": "long enough password", "roles": ["admin"]},
            "roles",
        ),
    ],
)
async def test_bad_registrations_are_422_with_errors(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["status"] == 422
    assert any(field in error["loc"] for error in problem["errors"])
    assert "long enough password" not in response.text  # the password is never echoed


async def test_a_password_containing_the_email_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "grace@example.com", "password": "grace-is-my-password"},
    )
    assert response.status_code == 422


async def test_login_gives_a_bearer_pair_with_the_documented_claims(
    tokens: Tokens, client: httpx.AsyncClient
) -> None:
    body = await tokens()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    header = jwt.get_unverified_header(body["access_token"])
    claims = jwt.get_unverified_claims(body["access_token"])
    assert header["alg"] == "RS256"
    assert header["kid"]
    assert set(claims) == {"iss", "aud", "sub", "roles", "iat", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 900
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}


async def test_unknown_email_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient, register: Callable[..., Awaitable[tuple[str, str]]], login: Any
) -> None:
    email, _ = await register()
    wrong = await login(email, "not the password at all")
    unknown = await login("nobody-" + email, "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.json()["type"] == unknown.json()["type"]
    assert wrong.headers["www-authenticate"].startswith("Bearer")


async def test_login_needs_the_form_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/token", data={"username": "a@example.com"})
    assert response.status_code == 422


async def test_me_answers_the_caller(client: httpx.AsyncClient, tokens: Tokens) -> None:
    body = await tokens()
    response = await client.get("/api/v1/auth/me", headers=_bearer(body["access_token"]))
    assert response.status_code == 200
    assert set(response.json()) == {"id", "email", "roles"}
    anonymous = await client.get("/api/v1/auth/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


async def test_refresh_rotates_and_the_new_pair_works(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    first = await tokens()
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    me = await client.get("/api/v1/auth/me", headers=_bearer(second["access_token"]))
    assert me.status_code == 200
    third = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert third.status_code == 200


async def test_reusing_a_spent_refresh_token_after_the_grace_window_revokes_the_whole_family(
    client: httpx.AsyncClient, tokens: Tokens, age_spent_tokens: AgeTokens
) -> None:
    first = await tokens()
    rotated = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status_code == 200
    await age_spent_tokens(first["refresh_token"], seconds=31)  # past the 30 s default
    reuse = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reuse.status_code == 401
    # The thief's reuse also cost the legitimate holder their newer token.
    legit = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
    )
    assert legit.status_code == 401


async def test_concurrent_refreshes_with_one_token_all_get_the_same_new_refresh_token(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    # Two tabs (or a reload racing a renewal) must not log the user out.
    first = await tokens()
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
            for _ in range(5)
        )
    )
    assert [response.status_code for response in responses] == [200] * 5
    assert len({response.json()["refresh_token"] for response in responses}) == 1
    successor = responses[0].json()["refresh_token"]
    assert successor != first["refresh_token"]
    onwards = await client.post("/api/v1/auth/refresh", json={"refresh_token": successor})
    assert onwards.status_code == 200


@pytest.mark.parametrize("body", [{"refresh_token": "made-up"}, {}, {"refresh_token": ""}])
async def test_an_unknown_or_missing_refresh_token_is_refused(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    response = await client.post("/api/v1/auth/refresh", json=body)
    assert response.status_code in (401, 422)


async def test_logout_revokes_the_refresh_token(client: httpx.AsyncClient, tokens: Tokens) -> None:
    body = await tokens()
    refresh = {"refresh_token": body["refresh_token"]}
    anonymous = await client.post("/api/v1/auth/logout", json=refresh)
    assert anonymous.status_code == 401
    response = await client.post(
        "/api/v1/auth/logout", json=refresh, headers=_bearer(body["access_token"])
    )
    assert response.status_code == 204
    assert response.content == b""
    after = await client.post("/api/v1/auth/refresh", json=refresh)
    assert after.status_code == 401


async def test_logout_cannot_revoke_another_users_token(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    victim, attacker = await tokens(), await tokens()
    refresh = {"refresh_token": victim["refresh_token"]}
    response = await client.post(
        "/api/v1/auth/logout", json=refresh, headers=_bearer(attacker["access_token"])
    )
    assert response.status_code == 204
    still = await client.post("/api/v1/auth/refresh", json=refresh)
    assert still.status_code == 200


async def test_create_admin_makes_an_admin_who_can_log_in(
    client: httpx.AsyncClient, make_settings: Callable[..., GatewaySettings], login: Any
) -> None:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    message = await create_admin(make_settings(), email=email, password="admin password 123")
    assert "created" in message
    response = await login(email, "admin password 123")
    assert response.status_code == 200
    claims = jwt.get_unverified_claims(response.json()["access_token"])
    assert "admin" in claims["roles"]


def test_create_admin_refuses_a_weak_password(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create-admin", "--email", "a@example.com", "--password", "weak"]) == 2
    assert "at least" in capsys.readouterr().err


def test_create_admin_refuses_a_password_that_is_not_valid_unicode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Bytes that are not UTF-8 on the command line reach Python as lone surrogates.
    password = "analytical engine \udcff"
    assert main(["create-admin", "--email", "a@example.com", "--password", password]) == 2
    assert "unicode" in capsys.readouterr().err


async def test_jwks_publishes_the_signing_key_and_a_previous_one(
    gateway_client: Any,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    previous = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    async with gateway_client(jwt_public_keys=previous) as client:
        response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 2
    assert all(key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key for key in keys)


async def test_text_with_a_nul_character_is_a_422_never_a_500(client: httpx.AsyncClient) -> None:
    # Found by fuzzing the platform: Postgres cannot store NUL, and the error was a 500.
    registered = await client.post(
        "/api/v1/auth/register",
        json={"email": "nul\u0000@example.com", "password": "analytical engine 1843"},
    )
    assert registered.status_code == 422, registered.text
    assert registered.json()["type"] == "/problems/unstorable-text"
    login = await client.post(
        "/api/v1/auth/token", data={"username": "a\u0000@example.com", "password": "x" * 12}
    )
    assert login.status_code in (401, 422), login.text


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"email": "a@example.com", "password": "\\ud800 analytical engine"}', "password"),
        ('{"email": "\\udfff@example.com", "password": "analytical engine 1843"}', "email"),
        (
            '{"email": "a@example.com", "password": "analytical engine 1843",'
            ' "full_name": "Ada \\ud83d"}',
            "full_name",
        ),
    ],
)
async def test_text_that_is_not_valid_unicode_is_a_422_naming_the_field(
    client: httpx.AsyncClient, raw: str, field: str
) -> None:
    # A lone surrogate escape in the raw JSON: Python's JSON reader and a str field let it
    # through; hashing the password or storing the text could not encode it (a 500).
    response = await client.post(
        "/api/v1/auth/register", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["errors"]] == [["body", field]]
    assert "analytical" not in response.text  # the password is never echoed


@pytest.mark.parametrize("route", ["/api/v1/auth/refresh", "/api/v1/auth/logout"])
async def test_a_refresh_token_that_is_not_valid_unicode_is_a_422(
    client: httpx.AsyncClient, tokens: Tokens, route: str
) -> None:
    access = (await tokens())["access_token"]
    response = await client.post(
        route,
        content='{"refresh_token": "tok_\\ud800"}',
        headers={"Content-Type": "application/json", **_bearer(access)},
    )
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["errors"]] == [["body", "refresh_token"]]


@pytest.mark.parametrize(
    "form",
    [
        # Percent-escapes of the UTF-8 form of a lone surrogate: not UTF-8, read as U+FFFD.
        b"username=a%40example.com&password=%ED%A0%80+analytical+engine",
        b"username=%ED%A0%80%40example.com&password=analytical+engine+1843",
    ],
)
async def test_a_login_form_with_bytes_that_are_not_utf8_is_a_401(
    client: httpx.AsyncClient, form: bytes
) -> None:
    response = await client.post(
        "/api/v1/auth/token",
        content=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401, response.text
