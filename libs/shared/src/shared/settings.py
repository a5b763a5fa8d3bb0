"""Settings base class: one hierarchy for every service and the gateway.

Each service reads ``<SERVICE>_<FIELD>`` first, then ``COMMERCE_<FIELD>`` (shared by every
process, so a test run or a deployment sets the database name or broker once), then the
default. Settings are built lazily by each service's cached ``get_settings()``, never at import.
"""

from __future__ import annotations

from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import URL

SHARED_ENV_PREFIX = "COMMERCE_"

# Values that only ever belong on a developer's machine. Outside development and test a
# secret equal to one of these is refused at start-up rather than silently used.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "password", "guest"})

Environment = Literal["development", "test", "production"]


class PlaceholderSecretError(ValueError):
    """A secret still holds a development placeholder outside development."""


class BaseServiceSettings(BaseSettings):
    """What every process of the platform is configured with."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True, frozen=True)

    service_name: ClassVar[str] = "service"

    environment: Environment = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    access_log: bool = True

    max_body_bytes: int = Field(default=1_048_576, ge=1)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)

    db_host: str = "127.0.0.1"
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str = "commerce"
    db_user: str = "postgres"
    db_password: SecretStr = SecretStr("change-me")
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=5, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)

    broker_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    broker_namespace: str = Field(default="", pattern=r"^[a-z0-9_.-]*$")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        shared_env = EnvSettingsSource(settings_cls, env_prefix=SHARED_ENV_PREFIX)
        return init_settings, env_settings, shared_env, file_secret_settings

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> BaseServiceSettings:
        if self.environment in ("development", "test"):
            return self
        offending = [name for name, value in self.secrets().items() if value in PLACEHOLDER_SECRETS]
        if offending:
            raise PlaceholderSecretError(
                f"placeholder secrets are refused in {self.environment}: {', '.join(offending)}"
            )
        return self

    def secrets(self) -> dict[str, str]:
        """Secret values by setting name; subclasses add their own."""
        return {
            "db_password": self.db_password.get_secret_value(),
            "broker_url password": urlsplit(self.broker_url.get_secret_value()).password or "",
        }

    @property
    def database_url(self) -> URL:
        return URL.create(
            "postgresql+asyncpg",
            username=self.db_user,
            password=self.db_password.get_secret_value() or None,
            host=self.db_host,
            port=self.db_port,
            database=self.db_name,
        )

    @property
    def db_schema(self) -> str:
        """The Postgres schema this service owns; it is named after the service."""
        return self.service_name

    @classmethod
    def env_prefix(cls) -> str:
        return str(cls.model_config.get("env_prefix", ""))
