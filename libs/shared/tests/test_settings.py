from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from shared.settings import PlaceholderSecretError

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
