"""The refresh token as a cookie for browsers (DESIGN §3), its Origin rule, and CORS that
offers credentials to the allowed origins only."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest

SHOP = "https://shop.example.com"
PASSWORD = "correct horse battery"


@pytest.fixture
async def browser_gateway(gateway_client: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(cors_allow_origins=[SHOP]) as client:
        yield client


def _cookie(response: httpx.Response) -> SimpleCookie:
    [header] = response.headers.get_list("set-cookie")
    cookie = SimpleCookie()
    cookie.load(header)
    return cookie


def _send_cookie(value: str, origin: str | None = SHOP) -> dict[str, str]:
    # Sent by hand: the client's jar would not send a Secure cookie over plain http.
    headers = {"Cookie": f"refresh_token={value}"}
    if origin is not None:
        headers["Origin"] = origin
    return headers


async def _login_with_cookie(client: httpx.AsyncClient) -> httpx.Response:
    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    registered = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201
    response = await client.post(
        "/api/v1/auth/token?refresh_in=cookie",
        data={"username": email, "password": PASSWORD},
        headers={"Origin": SHOP},
    )
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return response


async def test_login_with_refresh_in_cookie_sets_a_strict_httponly_cookie_not_the_body(
    browser_gateway: httpx.AsyncClient,
) -> None:
    response = await _login_with_cookie(browser_gateway)
    body = response.json()
    assert "refresh_token" not in body
    assert set(body) == {"access_token", "token_type", "expires_in"}
    morsel = _cookie(response)["refresh_token"]
    assert len(morsel.value) > 30
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "strict"
    assert morsel["path"] == "/api/v1/auth"
    assert morsel["secure"] is True  # the tests run as "test": outside development
    assert 13 * 86_400 < int(morsel["max-age"]) <= 14 * 86_400


async def test_the_cookie_is_not_secure_in_development(gateway_client: Any) -> None:
    # A developer's http://127.0.0.1 would never send a Secure cookie back.
    async with gateway_client(environment="development", cors_allow_origins=[SHOP]) as client:
        response = await _login_with_cookie(client)
    assert _cookie(response)["refresh_token"]["secure"] == ""


async def test_refresh_reads_the_cookie_from_an_allowed_origin_and_rotates_it(
    browser_gateway: httpx.AsyncClient,
) -> None:
    first = _cookie(await _login_with_cookie(browser_gateway))["refresh_token"].value
    response = await browser_gateway.post("/api/v1/auth/refresh", headers=_send_cookie(first))
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()
    rotated = _cookie(response)["refresh_token"].value
    assert rotated != first
    me = await browser_gateway.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
    )
    assert me.status_code == 200
    # Asked for in the body, the new one comes in the body.
    again = await browser_gateway.post(
        "/api/v1/auth/refresh?refresh_in=body", headers=_send_cookie(rotated)
    )
    assert again.status_code == 200
    assert again.json()["refresh_token"]


@pytest.mark.parametrize("origin", [None, "https://evil.example", "null"])
async def test_a_cookie_borne_refresh_without_an_allowed_origin_is_403_and_spends_nothing(
    browser_gateway: httpx.AsyncClient, origin: str | None
) -> None:
    token = _cookie(await _login_with_cookie(browser_gateway))["refresh_token"].value
    refused = await browser_gateway.post(
        "/api/v1/auth/refresh", headers=_send_cookie(token, origin=origin)
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/problems/forbidden-origin"
    assert "set-cookie" not in refused.headers
    allowed = await browser_gateway.post("/api/v1/auth/refresh", headers=_send_cookie(token))
    assert allowed.status_code == 200


@pytest.mark.parametrize("origin", [None, "https://evil.example", "null"])
async def test_a_login_that_would_set_the_cookie_needs_an_allowed_origin(
    browser_gateway: httpx.AsyncClient, origin: str | None
) -> None:
    # A form posted from another site would put the attacker's session into the victim's
    # browser (login CSRF): the cookie is set only for the shop's own pages.
    email = f"csrf-{uuid.uuid4().hex[:10]}@example.com"
    registered = await browser_gateway.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201
    refused = await browser_gateway.post(
        "/api/v1/auth/token?refresh_in=cookie",
        data={"username": email, "password": PASSWORD},
        headers={"Origin": origin} if origin is not None else {},
    )
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/forbidden-origin"
    assert "set-cookie" not in refused.headers
    # Asked in the body, the pair goes to whoever asked, with no cookie: no Origin needed.
    in_body = await browser_gateway.post(
        "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
    )
    assert in_body.status_code == 200
    assert "refresh_token" in in_body.json()


async def test_a_refresh_that_would_set_the_cookie_needs_an_allowed_origin(
    browser_gateway: httpx.AsyncClient,
) -> None:
    email = f"csrf-{uuid.uuid4().hex[:10]}@example.com"
    await browser_gateway.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    pair = await browser_gateway.post(
        "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
    )
    refused = await browser_gateway.post(
        "/api/v1/auth/refresh?refresh_in=cookie",
        json={"refresh_token": pair.json()["refresh_token"]},
        headers={"Origin": "https://evil.example"},
    )
    assert refused.status_code == 403
    assert "set-cookie" not in refused.headers


async def test_cookie_mode_refuses_every_origin_when_none_is_allowed(
    gateway_client: Any,
) -> None:
    async with gateway_client() as client:  # no CORS allow-list configured
        email = f"no-list-{uuid.uuid4().hex[:10]}@example.com"
        await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        form = {"username": email, "password": PASSWORD}
        login = await client.post(
            "/api/v1/auth/token?refresh_in=cookie", data=form, headers={"Origin": SHOP}
        )
        token = (await client.post("/api/v1/auth/token", data=form)).json()["refresh_token"]
        refused = await client.post("/api/v1/auth/refresh", headers=_send_cookie(token))
    assert login.status_code == 403
    assert refused.status_code == 403


async def test_a_token_in_the_body_needs_no_origin_even_beside_a_cookie(
    browser_gateway: httpx.AsyncClient,
) -> None:
    cookie = _cookie(await _login_with_cookie(browser_gateway))["refresh_token"].value
    other = _cookie(await _login_with_cookie(browser_gateway))["refresh_token"].value
    response = await browser_gateway.post(
        "/api/v1/auth/refresh",
        json={"refresh_token": other},
        headers=_send_cookie(cookie, origin=None),
    )
    assert response.status_code == 200
    assert response.json()["refresh_token"]  # where it came from: the body


async def test_logout_with_the_cookie_revokes_its_session_and_clears_it(
    browser_gateway: httpx.AsyncClient,
) -> None:
    login = await _login_with_cookie(browser_gateway)
    token = _cookie(login)["refresh_token"].value
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    refused = await browser_gateway.post(
        "/api/v1/auth/logout", headers={**_send_cookie(token, origin=None), **bearer}
    )
    assert refused.status_code == 403
    response = await browser_gateway.post(
        "/api/v1/auth/logout", headers={**_send_cookie(token), **bearer}
    )
    assert response.status_code == 204
    cleared = _cookie(response)["refresh_token"]
    assert cleared.value == ""
    assert cleared["max-age"] == "0"
    assert cleared["path"] == "/api/v1/auth"
    after = await browser_gateway.post("/api/v1/auth/refresh", headers=_send_cookie(token))
    assert after.status_code == 401


async def test_refresh_in_must_be_body_or_cookie(browser_gateway: httpx.AsyncClient) -> None:
    response = await browser_gateway.post(
        "/api/v1/auth/token?refresh_in=header", data={"username": "a@example.com", "password": "x"}
    )
    assert response.status_code == 422


async def test_refresh_with_no_token_anywhere_is_401(browser_gateway: httpx.AsyncClient) -> None:
    response = await browser_gateway.post("/api/v1/auth/refresh")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_cors_offers_credentials_to_allowed_origins_only(
    browser_gateway: httpx.AsyncClient,
) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = await browser_gateway.options(
        "/api/v1/auth/refresh", headers={"Origin": SHOP, **preflight}
    )
    refused = await browser_gateway.options(
        "/api/v1/auth/refresh", headers={"Origin": "https://evil.example", **preflight}
    )
    simple_allowed = await browser_gateway.get("/api/v1/products", headers={"Origin": SHOP})
    simple_other = await browser_gateway.get(
        "/api/v1/products", headers={"Origin": "https://evil.example"}
    )
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert simple_allowed.headers["access-control-allow-credentials"] == "true"
    for response in (refused, simple_other):
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-credentials" not in response.headers
        assert "access-control-expose-headers" not in response.headers
