from __future__ import annotations

import httpx

from shared.testing import app_client

from .conftest import build_sample_app


async def test_live_answers_without_dependencies(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_ready_fails_when_the_database_is_unreachable(database: str) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    app = build_sample_app(db_port=1, readiness_timeout_seconds=2.0)
    async with app_client(app) as client:
        response = await client.get("/health/ready")
        live = await client.get("/health/live")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "database" in response.json()["detail"]
    assert live.status_code == 200
