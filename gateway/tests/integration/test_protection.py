"""Rate limits shared through Redis, CORS allow-list, docs, readiness."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from gateway.config import GatewaySettings
from gateway.main import create_app
from shared.auth import ensure_development_keys
from shared.testing import app_client
from shared.testing.redis_keys import fresh_sub_namespace


def _namespace() -> str:
    # A namespace of its own: the counters of one test never meet another's.
    return fresh_sub_namespace()


async def test_the_api_limit_is_shared_by_two_gateway_instances(
    gateway_client: Any,
) -> None:
    namespace = _namespace()
    limits = {"broker_namespace": namespace, "rate_limit_api": "4/minute"}
    async with gateway_client(**limits) as first, gateway_client(**limits) as second:
        statuses = [
            (await (first if i % 2 else second).get("/api/v1/products")).status_code
            for i in range(6)
        ]
        refused = await first.get("/api/v1/products")
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-limit"] == "4"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.json()["status"] == 429


async def test_the_api_limit_counts_per_user_when_authenticated(
    gateway_client: Any,
) -> None:
    namespace = _namespace()
    async with gateway_client(broker_namespace=namespace, rate_limit_api="3/minute") as client:
        for _ in range(3):
            assert (await client.get("/api/v1/products")).status_code == 200
        assert (await client.get("/api/v1/products")).status_code == 429
    # Another namespace (another deployment or test run) has counters of its own.
    async with gateway_client(broker_namespace=_namespace(), rate_limit_api="3/minute") as other:
        assert (await other.get("/api/v1/products")).status_code == 200


async def test_failed_logins_are_limited_per_account_across_addresses(
    gateway_client: Any,
) -> None:
    settings = {
        "broker_namespace": _namespace(),
        "rate_limit_login_failures_per_account": "3/minute",
    }
    async with gateway_client(**settings) as client:
        form = {"username": "victim@example.com", "password": "guess guess guess"}
        statuses = [
            (await client.post("/api/v1/auth/token", data=form)).status_code for _ in range(4)
        ]
        other = await client.post(
            "/api/v1/auth/token", data={**form, "username": "someone-else@example.com"}
        )
    assert statuses == [401, 401, 401, 429]
    assert other.status_code == 401  # the limit is the account's, not everyone's


async def test_login_is_limited_per_address(gateway_client: Any) -> None:
    settings = {"broker_namespace": _namespace(), "rate_limit_login_per_address": "2/minute"}
    async with gateway_client(**settings) as client:
        statuses = [
            (
                await client.post(
                    "/api/v1/auth/token",
                    data={"username": f"u{i}@example.com", "password": "guess guess guess"},
                )
            ).status_code
            for i in range(3)
        ]
    assert statuses == [401, 401, 429]


async def test_without_redis_requests_pass_and_it_stays_ready_when_failing_open(
    gateway_client: Any, internal: Callable[[httpx.AsyncClient], httpx.AsyncClient]
) -> None:
    # Readiness takes a gateway out of rotation: for an outage that only lifts the rate
    # limits, that would turn a degraded API into none at all.
    async with gateway_client(redis_url="redis://127.0.0.1:1/0") as client:
        response = await client.get("/api/v1/products")
        ready = await internal(client).get("/health/ready")
    assert response.status_code == 200
    assert ready.status_code == 200, ready.text


async def test_without_redis_requests_are_503_and_it_is_not_ready_when_failing_closed(
    gateway_client: Any, internal: Callable[[httpx.AsyncClient], httpx.AsyncClient]
) -> None:
    async with gateway_client(redis_url="redis://127.0.0.1:1/0", rate_limit_fail_open=False) as c:
        response = await c.get("/api/v1/products")
        ready = await internal(c).get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert ready.status_code == 503
    assert "redis" in ready.json()["detail"]


async def test_cors_answers_allowed_origins_only(gateway_client: Any) -> None:
    allowed = "https://shop.example.com"
    settings = {"cors_allow_origins": [allowed], "cors_allow_credentials": True}
    async with gateway_client(**settings) as client:
        preflight = await client.options(
            "/api/v1/orders",
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, idempotency-key",
            },
        )
        refused = await client.options(
            "/api/v1/orders",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        simple = await client.get("/api/v1/products", headers={"Origin": "https://evil.example"})
        ok = await client.get("/api/v1/products", headers={"Origin": allowed})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert refused.status_code == 403  # an origin refused: problem+json (docs/edge.md)
    assert refused.headers["content-type"] == "application/problem+json"
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in simple.headers
    assert ok.headers["access-control-allow-origin"] == allowed
    assert "x-request-id" in ok.headers["access-control-expose-headers"].lower()


async def test_the_merged_openapi_shows_every_service_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/api/v1/products",
        "/api/v1/products/{sku}",
    ):
        assert path in paths, path
    assert "/internal/debug" not in paths  # not under a public prefix
    assert "/health/ready" not in paths
    # The upstream's UserOut differs from the gateway's: renamed, and its reference follows.
    ref = paths["/api/v1/products/{sku}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]["$ref"]
    assert ref == "#/components/schemas/inventory.UserOut"
    assert "UserOut" in document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text


async def test_docs_can_be_turned_off(gateway_client: Any) -> None:
    async with gateway_client(docs_enabled=False) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404


async def test_production_serves_no_docs_unless_enabled(
    make_settings: Callable[..., GatewaySettings], tmp_path: Path
) -> None:
    production = {
        "environment": "production",
        # A key of its own, not the development key of the run's key folder.
        "jwt_private_key": ensure_development_keys(tmp_path)[0],
        "db_password": "a real password",
        "broker_url": "amqp://user:real-password@broker:5672/",
    }
    for enabled, expected in ((None, 404), (True, 200)):
        app = create_app(make_settings(**production, docs_enabled=enabled))
        async with app_client(app) as client:
            assert (await client.get("/docs")).status_code == expected
            assert (await client.get("/openapi.json")).status_code == expected
