"""Gateway settings refuse what would be unsafe or malformed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config import GatewaySettings

PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "db_password": "a real password",
    "broker_url": "amqp://user:real-password@broker:5672/",
}


def test_production_refuses_to_start_without_a_signing_key() -> None:
    with pytest.raises(ValidationError, match="jwt_private_key"):
        GatewaySettings(**PRODUCTION)


def test_production_accepts_a_signing_key_file() -> None:
    settings = GatewaySettings(**PRODUCTION, jwt_private_key_file="/run/secrets/jwt.pem")
    assert settings.jwt_private_key_file == "/run/secrets/jwt.pem"


def test_a_wildcard_cors_origin_is_refused() -> None:
    with pytest.raises(ValidationError, match="explicitly"):
        GatewaySettings(cors_allow_origins=["*"])


@pytest.mark.parametrize(
    "routes",
    [
        {"api/v1/products": "http://127.0.0.1:8001"},
        {"/api/v1/products/": "http://127.0.0.1:8001"},
        {"/api/v1/products": "ftp://127.0.0.1"},
        {"/api/v1/products": "http://127.0.0.1:8001/base"},
    ],
)
def test_malformed_routes_are_refused(routes: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(routes=routes)


def test_malformed_rate_limits_are_refused() -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(rate_limit_api="lots per second")


def test_the_rate_limit_prefix_carries_the_namespace() -> None:
    assert "run-42" in GatewaySettings(broker_namespace="run-42").rate_limit_prefix


def test_the_default_routes_send_each_prefix_to_its_service() -> None:
    routes = GatewaySettings().routes
    assert routes["/api/v1/products"] == routes["/api/v1/inventory"] == "http://127.0.0.1:8001"
    assert routes["/api/v1/orders"] == "http://127.0.0.1:8002"
    assert routes["/api/v1/payments"] == "http://127.0.0.1:8003"
