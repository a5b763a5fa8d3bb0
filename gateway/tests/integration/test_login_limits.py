"""Failed-login budgets in Redis (issue 21 #10): correct passwords cost nothing, guessing
from many addresses stops at the account's budget, and the owner's address keeps its own."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from shared.testing.redis_keys import fresh_sub_namespace

PASSWORD = "the owners password"
WRONG = "a wrong guess, again"


def _namespace() -> str:
    # Counters of their own: other tests (and runs) never meet them.
    return fresh_sub_namespace()


def _limits(**overrides: str) -> dict[str, Any]:
    return {
        "broker_namespace": _namespace(),
        "rate_limit_login_failures_per_account": "3/minute",
        "rate_limit_login_failures_per_known_address": "3/minute",
        **overrides,
    }


async def _owner(client: httpx.AsyncClient) -> str:
    email = f"owner-{uuid.uuid4().hex[:10]}@example.com"
    registered = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert registered.status_code == 201, registered.text
    return email


async def _login(client: httpx.AsyncClient, email: str, password: str) -> int:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    return response.status_code


async def test_correct_logins_are_never_counted(gateway_from_addresses: Any) -> None:
    async with gateway_from_addresses(**_limits()) as client_from:
        owner = client_from("192.0.2.1")
        email = await _owner(owner)
        statuses = [await _login(owner, email, PASSWORD) for _ in range(8)]
    assert statuses == [200] * 8


async def test_failures_from_many_addresses_exhaust_the_accounts_budget(
    gateway_from_addresses: Any,
) -> None:
    async with gateway_from_addresses(**_limits()) as client_from:
        email = await _owner(client_from("192.0.2.1"))
        guesses = [await _login(client_from(f"203.0.113.{n}"), email, WRONG) for n in range(1, 5)]
        # Even the right password from yet another address waits: it may be the guesser's.
        right_elsewhere = await client_from("203.0.113.99").post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
    assert guesses == [401, 401, 401, 429]
    assert right_elsewhere.status_code == 429
    assert right_elsewhere.headers["content-type"] == "application/problem+json"
    assert 1 <= int(right_elsewhere.headers["retry-after"]) <= 60


async def test_an_address_that_signed_in_recently_keeps_its_own_budget(
    gateway_from_addresses: Any,
) -> None:
    async with gateway_from_addresses(**_limits()) as client_from:
        home = client_from("192.0.2.1")
        email = await _owner(home)
        assert await _login(home, email, PASSWORD) == 200
        attack = [await _login(client_from(f"203.0.113.{n}"), email, WRONG) for n in range(1, 6)]
        owner_again = await _login(home, email, PASSWORD)
        owner_typo = await _login(home, email, WRONG)
    assert attack == [401, 401, 401, 429, 429]
    assert owner_again == 200  # the attacker cannot lock the owner out
    assert owner_typo == 401  # the owner's own failures spend the owner's budget only


async def test_failures_from_a_known_address_are_limited_by_its_own_budget(
    gateway_from_addresses: Any,
) -> None:
    limits = _limits(rate_limit_login_failures_per_known_address="2/minute")
    async with gateway_from_addresses(**limits) as client_from:
        home = client_from("192.0.2.1")
        email = await _owner(home)
        assert await _login(home, email, PASSWORD) == 200
        statuses = [await _login(home, email, WRONG) for _ in range(3)]
        elsewhere = await _login(client_from("203.0.113.1"), email, WRONG)
    assert statuses == [401, 401, 429]
    assert elsewhere == 401  # the account's budget across addresses is untouched


async def test_concurrent_guesses_cannot_overshoot_the_budget(gateway_from_addresses: Any) -> None:
    # Each attempt is counted before its password is checked, and given back if right.
    async with gateway_from_addresses(**_limits()) as client_from:
        email = await _owner(client_from("192.0.2.1"))
        statuses = await asyncio.gather(
            *(_login(client_from(f"198.51.100.{n}"), email, WRONG) for n in range(1, 11))
        )
    assert sorted(statuses) == [401] * 3 + [429] * 7


async def test_the_budget_counts_an_unknown_email_like_any_account(
    gateway_from_addresses: Any,
) -> None:
    # The same answers for an account that does not exist: no enumeration by limits.
    async with gateway_from_addresses(**_limits()) as client_from:
        email = f"nobody-{uuid.uuid4().hex[:10]}@example.com"
        statuses = [await _login(client_from(f"203.0.113.{n}"), email, WRONG) for n in range(1, 5)]
    assert statuses == [401, 401, 401, 429]


async def test_counters_are_shared_by_gateway_replicas(gateway_from_addresses: Any) -> None:
    limits = _limits()
    async with (
        gateway_from_addresses(**limits) as first,
        gateway_from_addresses(**limits) as second,
    ):
        email = await _owner(first("192.0.2.1"))
        statuses = [
            await _login((first if n % 2 else second)(f"203.0.113.{n}"), email, WRONG)
            for n in range(1, 5)
        ]
    assert statuses == [401, 401, 401, 429]
