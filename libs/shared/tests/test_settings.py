from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from shared.auth import ensure_development_keys
from shared.settings import DevelopmentKeyError, PlaceholderSecretError

from .conftest import SampleSettings


def test_service_prefix_wins_over_shared_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMERCE_DB_HOST", "shared-host")
    monkeypatch.setenv("SAMPLE_DB_HOST", "own-host")
    monkeypatch.setenv("COMMERCE_DB_PORT", "6543")
    settings = SampleSettings()
    assert settings.db_host == "own-host"
    assert settings.db_port == 6543


def test_database_url_is_built_from_parts() -> None:
    settings = SampleSettings(db_host="db", db_port=5433, db_name="shop", db_user="sample")
    url = settings.database_url
    assert (url.drivername, url.host, url.port, url.database, url.username) == (
        "postgresql+asyncpg",
        "db",
        5433,
        "shop",
        "sample",
    )
    assert settings.db_schema == "sample"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", 0),
        ("port", 70000),
        ("db_pool_size", 0),
        ("log_level", "LOUD"),
        ("environment", "staging"),
    ],
)
def test_invalid_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        SampleSettings(**{field: value})  # type: ignore[arg-type]


def test_placeholder_secrets_are_refused_in_production() -> None:
    with pytest.raises(ValidationError) as caught:
        SampleSettings(environment="production")
    assert "db_password" in str(caught.value)
    assert isinstance(caught.value.errors()[0]["ctx"]["error"], PlaceholderSecretError)


def test_production_starts_with_real_secrets() -> None:
    settings = SampleSettings(
        environment="production",
        db_password=SecretStr("s3cure-and-long"),
        broker_url=SecretStr("amqp://shop:k9-broker@rabbit:5672/"),
    )
    assert settings.environment == "production"


@pytest.mark.parametrize("environment", ["development", "test"])
def test_placeholders_are_fine_outside_production(environment: str) -> None:
    assert SampleSettings(environment=environment).db_password.get_secret_value() == "change-me"  # type: ignore[arg-type]


def test_secrets_never_show_in_repr() -> None:
    settings = SampleSettings(db_password=SecretStr("s3cure-and-long"))
    assert "s3cure" not in repr(settings)


def test_a_forgotten_environment_means_production_and_refuses_placeholders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fails closed: without COMMERCE_ENVIRONMENT, the defaults are not trusted.
    monkeypatch.delenv("COMMERCE_ENVIRONMENT", raising=False)
    monkeypatch.delenv("SAMPLE_ENVIRONMENT", raising=False)
    assert SampleSettings.model_fields["environment"].default == "production"
    with pytest.raises(ValidationError, match="placeholder secrets are refused in production"):
        SampleSettings()


REAL = {
    "environment": "production",
    "db_password": SecretStr("s3cure-and-long"),
    "broker_url": SecretStr("amqp://shop:k9-broker@rabbit:5672/"),
}


def test_production_refuses_the_development_public_key(tmp_path: Path) -> None:
    _, public_pem = ensure_development_keys(tmp_path)
    with pytest.raises(ValidationError) as caught:
        SampleSettings(**REAL, jwt_dev_key_dir=str(tmp_path), jwt_public_keys=public_pem)  # type: ignore[arg-type]
    assert "jwt_public_keys" in str(caught.value)
    assert isinstance(caught.value.errors()[0]["ctx"]["error"], DevelopmentKeyError)


def test_production_refuses_a_key_file_from_the_development_key_folder(tmp_path: Path) -> None:
    ensure_development_keys(tmp_path)
    with pytest.raises(ValidationError, match="jwt_public_key_file"):
        SampleSettings(
            **REAL,  # type: ignore[arg-type]
            jwt_dev_key_dir=str(tmp_path),
            jwt_public_key_file=str(tmp_path / "dev-signing-key.pub.pem"),
        )


def test_production_accepts_a_key_of_its_own(tmp_path: Path) -> None:
    ensure_development_keys(tmp_path / "dev")
    _, own_public = ensure_development_keys(tmp_path / "own")  # another pair altogether
    settings = SampleSettings(
        **REAL,  # type: ignore[arg-type]
        jwt_dev_key_dir=str(tmp_path / "dev"),
        jwt_public_keys=own_public,
    )
    assert settings.jwt_public_keys == own_public


@pytest.mark.parametrize(
    ("environment", "enabled", "served"),
    [
        ("development", None, True),
        ("test", None, True),
        ("production", None, False),
        ("production", True, True),
        ("development", False, False),
    ],
)
def test_docs_are_served_in_development_and_where_enabled(
    environment: str, enabled: bool | None, served: bool
) -> None:
    secrets = {key: value for key, value in REAL.items() if key != "environment"}
    settings = SampleSettings(environment=environment, docs_enabled=enabled, **secrets)  # type: ignore[arg-type]
    assert settings.docs_served is served


def test_the_broker_password_is_checked_where_a_connection_is_opened() -> None:
    # The gateway and the migration step never connect to the broker and are given no URL:
    # their settings must not fail on its default.
    settings = SampleSettings(environment="production", db_password=SecretStr("s3cure-and-long"))
    with pytest.raises(PlaceholderSecretError, match="broker_url password"):
        settings.refuse_placeholder_broker_password()
    SampleSettings(**REAL).refuse_placeholder_broker_password()  # type: ignore[arg-type]
    SampleSettings(environment="test").refuse_placeholder_broker_password()


async def test_a_broker_with_a_placeholder_password_refuses_to_connect_in_production() -> None:
    from shared.messaging.broker import Broker

    settings = SampleSettings(environment="production", db_password=SecretStr("s3cure-and-long"))
    with pytest.raises(PlaceholderSecretError):
        await Broker(settings).connect()
