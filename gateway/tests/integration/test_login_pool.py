"""Argon2 runs with no pooled connection held (issue 21 #11): a burst of logins larger than
the pool leaves the other auth routes answering."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

PASSWORD = "correct horse battery"
POOL_SIZE = 2
LOGINS = 24  # twelve times the pool


async def _register(client: httpx.AsyncClient) -> str:
    email = f"burst-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return email


async def test_logins_above_the_pool_size_leave_refresh_me_and_logout_answering(
    gateway_client: Any,
) -> None:
    settings = {"db_pool_size": POOL_SIZE, "db_max_overflow": 0, "db_pool_timeout_seconds": 2.0}
    async with gateway_client(**settings) as client:
        emails = [await _register(client) for _ in range(LOGINS)]
        sessions = []
        for email in emails[:3]:
            login = await client.post(
                "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            sessions.append(login.json())
        bearer = {"Authorization": f"Bearer {sessions[0]['access_token']}"}

        async def others() -> list[int]:
            await asyncio.sleep(0.05)  # once the logins are hashing
            statuses = []
            for _ in range(3):
                me = await client.get("/api/v1/auth/me", headers=bearer)
                statuses.append(me.status_code)
            refreshed = await client.post(
                "/api/v1/auth/refresh", json={"refresh_token": sessions[1]["refresh_token"]}
            )
            logout = await client.post(
                "/api/v1/auth/logout",
                json={"refresh_token": sessions[2]["refresh_token"]},
                headers=bearer,
            )
            return [*statuses, refreshed.status_code, logout.status_code]

        logins = [
            client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
            for email in emails
        ]
        *burst, other = await asyncio.gather(*logins, others())
    assert other == [200, 200, 200, 200, 204]
    assert [response.status_code for response in burst] == [200] * LOGINS
