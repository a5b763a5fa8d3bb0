"""Settings base class: one hierarchy for every service and the gateway.

Each service reads ``<SERVICE>_<FIELD>`` first, then ``COMMERCE_<FIELD>`` (shared by every
process, so a test run or a deployment sets the database name or broker once), then the
default. Settings are built lazily by each service's cached ``get_settings()``, never at import.

The environment defaults to production: a forgotten variable fails closed. Production refuses
placeholder secrets and the development signing keys; development and test (set explicitly by
``make dev``, the test plugin and the harnesses) accept them.
"""

from __future__ import annotations

from pathlib import Path
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
# What shared.auth.ensure_development_keys writes into ``jwt_dev_key_dir``.
DEV_KEY_FILES = ("dev-signing-key.pem", "dev-signing-key.pub.pem")

# Values that only ever belong on a developer's machine. Outside development and test a
# secret equal to one of these is refused at start-up rather than silently used.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "password", "guest"})

# The development admin `make seed` creates (Makefile): refused in production.
DEVELOPMENT_ADMIN_EMAIL = "admin@example.com"
DEVELOPMENT_ADMIN_PASSWORD = "correct-horse-battery-staple"  # noqa: S105 (documented placeholder)

Environment = Literal["development", "test", "production"]
DEVELOPMENT_ENVIRONMENTS = frozenset({"development", "test"})


class PlaceholderSecretError(ValueError):
    """A secret still holds a development placeholder outside development."""


class DevelopmentKeyError(ValueError):
    """A development signing key is configured outside development."""


class BaseServiceSettings(BaseSettings):
    """What every process of the platform is configured with."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True, frozen=True)

    service_name: ClassVar[str] = "service"

    environment: Environment = "production"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    access_log: bool = True

    # /docs and /openapi.json: None serves them in development and test only.
    docs_enabled: bool | None = None

    max_body_bytes: int = Field(default=1_048_576, ge=1)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)

    db_host: str = "127.0.0.1"
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str = "commerce"
    db_user: str = "postgres"
    db_password: SecretStr = SecretStr("change-me")
    db_pool_size: int = Field(default=10, ge=1)
    # A fixed pool by default: an overflow connection is closed when its burst ends, so a
    # worker whose batches come in bursts would open and close one per batch (a Postgres
    # backend started and torn down each time); waiting a moment for a pooled one costs less.
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)

    broker_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    broker_namespace: str = Field(default="", pattern=r"^[a-z0-9_.-]*$")
    # Messaging (shared.messaging): consumers, relay and topology.
    broker_prefetch: int = Field(default=100, ge=1)  # unacked messages per consumer channel
    # Waits before a batch while batches come close together (shared.messaging.linger).
    consumer_linger_ms: float = Field(default=4.0, ge=0, le=1000)
    broker_delivery_limit: int = Field(default=5, ge=0)  # redeliveries before the DLQ
    broker_heartbeat_seconds: int = Field(default=30, ge=0)  # AMQP heartbeat; 0 disables
    broker_reconnect_interval_seconds: float = Field(default=1.0, gt=0)  # robust reconnect pause
    broker_publish_timeout_seconds: float = Field(default=10.0, gt=0)  # wait for a confirm
    outbox_batch_size: int = Field(default=500, ge=1)  # rows a relay claims per transaction
    outbox_poll_interval_seconds: float = Field(default=1.0, gt=0)  # fallback when no NOTIFY
    outbox_linger_ms: float = Field(default=4.0, ge=0, le=1000)  # the relay's, the same way
    outbox_max_backoff_seconds: float = Field(default=30.0, gt=0)  # cap on retry pauses
    outbox_retention_hours: float = Field(default=72.0, gt=0)  # sent rows older are pruned
    # Inbox keys older than this are pruned: it must outlast any late copy of an event.
    inbox_retention_hours: float = Field(default=168.0, gt=0)
    worker_shutdown_timeout_seconds: float = Field(default=20.0, gt=0)  # drain on SIGTERM
    # How much lower the workers' CPU priority is than the apps' (a nice increment): on shared
    # cores a storefront's request, which a customer waits on, runs before a worker's batch,
    # whose events only wait a few milliseconds more.
    worker_nice: int = Field(default=10, ge=0, le=19)
    # Port of the worker's probe server (/health/live, /health/ready, /metrics); 0 turns it off.
    worker_port: int = Field(default=0, ge=0, le=65535)
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # Access tokens (shared.auth): every process verifies the gateway's RS256 tokens.
    jwt_issuer: str = "commerce-gateway"  # the `iss` tokens must carry
    jwt_audience: str = "commerce-api"  # the `aud` tokens must carry
    jwt_public_keys: str = ""  # PEM public key(s), concatenated; the current and a previous one
    jwt_public_key_file: str = ""  # or a file of PEM public key(s)
    # Without either, development and test use (and create once) a key pair in this folder;
    # any other environment refuses to start.
    jwt_dev_key_dir: str = "var/keys"
    jwt_leeway_seconds: int = Field(default=10, ge=0, le=300)  # clock skew allowed on exp/iat/nbf
    jwt_max_token_bytes: int = Field(default=8192, ge=256)  # longer tokens are refused unread
    jwt_verified_cache_size: int = Field(default=4096, ge=0)  # verified tokens kept until exp

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
        if self.is_development:
            return self
        offending = [name for name, value in self.secrets().items() if value in PLACEHOLDER_SECRETS]
        if offending:
            raise PlaceholderSecretError(
                f"placeholder secrets are refused in {self.environment}: {', '.join(offending)}"
            )
        return self

    @model_validator(mode="after")
    def _refuse_development_keys(self) -> BaseServiceSettings:
        if self.is_development:
            return self
        offending = [
            name for name, pem in self.key_settings().items() if self._is_development_key(pem)
        ]
        if offending:
            raise DevelopmentKeyError(
                f"the development signing key is refused in {self.environment}: "
                f"{', '.join(offending)} (see docs/edge.md)"
            )
        return self

    def _is_development_key(self, value: str) -> bool:
        """A key file inside the development key folder, or a key equal to one in it."""
        folder = Path(self.jwt_dev_key_dir).resolve()
        if value.startswith("file:"):
            return Path(value.removeprefix("file:")).resolve().is_relative_to(folder)
        for name in DEV_KEY_FILES:
            path = folder / name
            if value.strip() and path.is_file() and path.read_text().strip() in value:
                return True
        return False

    def key_settings(self) -> dict[str, str]:
        """Signing and verification keys by setting name (PEM text, or ``file:<path>``)."""
        keys = {"jwt_public_keys": self.jwt_public_keys}
        if self.jwt_public_key_file:
            keys["jwt_public_key_file"] = f"file:{self.jwt_public_key_file}"
        return keys

    @property
    def is_development(self) -> bool:
        """Development or test: development keys and placeholder secrets are accepted."""
        return self.environment in DEVELOPMENT_ENVIRONMENTS

    @property
    def docs_served(self) -> bool:
        """Whether /docs and /openapi.json are served (``docs_enabled``, else development)."""
        return self.is_development if self.docs_enabled is None else self.docs_enabled

    def secrets(self) -> dict[str, str]:
        """Secret values checked at start-up by setting name; subclasses add their own.

        The broker's password is not among them: processes that never connect to the broker
        (the gateway, the migration step) are not given one, so it is checked where a
        connection is opened (``refuse_placeholder_broker_password``)."""
        return {"db_password": self.db_password.get_secret_value()}

    def refuse_placeholder_broker_password(self) -> None:
        """Raise ``PlaceholderSecretError`` if the broker URL's password is a placeholder
        outside development."""
        password = urlsplit(self.broker_url.get_secret_value()).password or ""
        if not self.is_development and password in PLACEHOLDER_SECRETS:
            raise PlaceholderSecretError(
                f"placeholder secrets are refused in {self.environment}: broker_url password"
            )

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
