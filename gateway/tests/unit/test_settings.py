"""Gateway settings refuse what would be unsafe or malformed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from gateway.cli import main
from gateway.config import GatewaySettings, get_settings
from shared.auth import ensure_development_keys

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


def test_a_forgotten_environment_means_production(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COMMERCE_ENVIRONMENT", "GATEWAY_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    # No signing key, placeholder secrets: refused, never a generated key.
    with pytest.raises(ValidationError, match="refused in production"):
        GatewaySettings()


def test_production_refuses_the_development_signing_key(tmp_path: Path) -> None:
    private_pem, _ = ensure_development_keys(tmp_path)
    with pytest.raises(ValidationError, match=r"development signing key.*jwt_private_key"):
        GatewaySettings(
            **PRODUCTION, jwt_dev_key_dir=str(tmp_path), jwt_private_key=SecretStr(private_pem)
        )
    with pytest.raises(ValidationError, match="jwt_private_key_file"):
        GatewaySettings(
            **PRODUCTION,
            jwt_dev_key_dir=str(tmp_path),
            jwt_private_key_file=str(tmp_path / "dev-signing-key.pem"),
        )


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("admin@example.com", "a long and real password"),
        ("Admin@Example.com", "a long and real password"),
        ("ops@shop.example", "correct-horse-battery-staple"),
    ],
)
def test_production_refuses_the_development_admin(email: str, password: str) -> None:
    settings = GatewaySettings(**PRODUCTION, jwt_private_key_file="/run/secrets/jwt.pem")
    assert (
        settings.refuses_admin(email, password) == "the development admin is refused in production"
    )
    assert settings.refuses_admin("ops@shop.example", "a long and real password") is None


def test_development_keeps_the_development_admin() -> None:
    settings = GatewaySettings(environment="development")
    assert settings.refuses_admin("admin@example.com", "correct-horse-battery-staple") is None


def test_create_admin_refuses_the_development_admin_in_production(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMMERCE_ENVIRONMENT", "production")
    monkeypatch.setenv("COMMERCE_DB_PASSWORD", "a real password")
    monkeypatch.setenv("COMMERCE_BROKER_URL", "amqp://user:real-password@broker:5672/")
    monkeypatch.setenv("GATEWAY_JWT_PRIVATE_KEY_FILE", "/run/secrets/jwt.pem")
    get_settings.cache_clear()
    try:
        status = main(
            ["create-admin", "--email", "admin@example.com", "--password", "a long real password"]
        )
    finally:
        get_settings.cache_clear()
    assert status == 2
    assert "development admin is refused" in capsys.readouterr().err


def test_internal_port_must_differ_from_the_public_one() -> None:
    with pytest.raises(ValidationError, match="internal_port"):
        GatewaySettings(port=9000, internal_port=9000)


def test_production_needs_no_broker_url_since_the_gateway_uses_no_broker() -> None:
    settings = GatewaySettings(
        environment="production",
        db_password=SecretStr("a real password"),
        jwt_private_key_file="/k.pem",
    )
    assert settings.environment == "production"
