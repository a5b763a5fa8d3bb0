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


def redis_key_prefix(broker_namespace: str) -> str:
    """Where a namespace's keys live in Redis (``commerce:<namespace>``, ``default`` for the
    empty one): test runs and deployments sharing one Redis never collide."""
    return f"commerce:{broker_namespace or 'default'}"


class PlaceholderSecretError(ValueError):
    """A secret still holds a development placeholder outside development."""


class DevelopmentKeyError(ValueError):
    """A development signing key is configured outside development."""


class BaseServiceSettings(BaseSettings):
    """What every process of the platform is configured with."""

    # Each field's docstring is its description: docs/settings.md is rendered from them.
    model_config = SettingsConfigDict(
        extra="ignore", validate_default=True, frozen=True, use_attribute_docstrings=True
    )

    service_name: ClassVar[str] = "service"

    environment: Environment = "production"
    """Production refuses placeholder secrets, the development signing keys and the development
    admin; development and test accept them."""
    host: str = "127.0.0.1"
    """Address the HTTP server binds."""
    port: int = Field(default=8000, ge=1, le=65535)
    """Port the HTTP server binds; each process has a default of its own."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """The least severe records logged."""
    log_format: Literal["json", "console"] = "json"
    """`json`: one object a line; `console`: for people (`make dev` uses it)."""

    access_log: bool = True
    """One log line per request, with status and duration."""

    docs_enabled: bool | None = None
    """`/docs` and `/openapi.json`: unset serves them in development and test only; `true` or
    `false` decides everywhere."""

    max_body_bytes: int = Field(default=1_048_576, ge=1)
    """Request bodies over this are refused with 413."""
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)
    """Time allowed to each readiness check."""

    db_host: str = "127.0.0.1"
    """Postgres host."""
    db_port: int = Field(default=5432, ge=1, le=65535)
    """Postgres port."""
    db_name: str = "commerce"
    """Database name."""
    db_user: str = "postgres"
    """The role the process connects as; each service has a role of its own."""
    db_password: SecretStr = SecretStr("change-me")
    """The role's password (ignored by local trust auth)."""
    db_pool_size: int = Field(default=10, ge=1)
    """Connections kept in each process's pool."""
    db_max_overflow: int = Field(default=0, ge=0)
    """Extra connections opened beyond the pool under load, closed again when the burst ends (0: a
    fixed pool; bursts wait up to the pool timeout instead, cheaper than a Postgres backend per
    burst)."""
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    """Wait for a pooled connection before failing."""
    db_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    """Wait for a new connection before failing."""

    broker_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    """The RabbitMQ server, with the user and password of this process."""
    broker_namespace: str = Field(default="", pattern=r"^[a-z0-9_.-]*$")
    """Prefix of exchange and queue names (each test run sets its own)."""
    # Messaging (shared.messaging): consumers, relay and topology.
    broker_prefetch: int = Field(default=100, ge=1)
    """Unacked messages per consumer channel (so also the most a batch can hold)."""
    consumer_linger_ms: float = Field(default=4.0, ge=0, le=1000)
    """A consumer's wait before a batch, taken only while batches come less than 100 ms apart, so
    the deliveries right behind share it (`shared/messaging/linger.py`); 0 turns it off."""
    broker_delivery_limit: int = Field(default=5, ge=0)
    """Redeliveries before the DLQ (`x-delivery-limit`; N+1 deliveries)."""
    broker_heartbeat_seconds: int = Field(default=30, ge=0)
    """AMQP heartbeat; 0 disables."""
    broker_reconnect_interval_seconds: float = Field(default=1.0, gt=0)
    """Pause between robust reconnect attempts."""
    broker_publish_timeout_seconds: float = Field(default=10.0, gt=0)
    """Wait for a publisher confirm."""
    outbox_batch_size: int = Field(default=500, ge=1)
    """Rows a relay claims per transaction."""
    outbox_poll_interval_seconds: float = Field(default=1.0, gt=0)
    """Relay poll when no NOTIFY arrives."""
    outbox_linger_ms: float = Field(default=4.0, ge=0, le=1000)
    """The relay's wait after a NOTIFY, the same way: the commits right behind share its batch."""
    outbox_max_backoff_seconds: float = Field(default=30.0, gt=0)
    """Cap on the relay's retry pause."""
    outbox_retention_hours: float = Field(default=72.0, gt=0)
    """Sent outbox rows older than this are pruned."""
    inbox_retention_hours: float = Field(default=168.0, gt=0)
    """Inbox keys (processed events) older than this are pruned; must outlast any late copy of an
    event."""
    worker_shutdown_timeout_seconds: float = Field(default=20.0, gt=0)
    """Drain time for in-flight messages and the relay on SIGTERM."""
    worker_nice: int = Field(default=10, ge=0, le=19)
    """How much lower a worker's CPU priority is than the apps' (a nice increment, 0 to 19): on
    shared cores a request a customer waits on runs before a worker's batch, whose events only
    wait a few milliseconds more."""
    worker_port: int = Field(default=0, ge=0, le=65535)
    """Port of the worker's probe server (`/health/live`, `/health/ready`, `/metrics`); 0 turns
    it off (the test suite does, unless a test asks for one). Each service's worker has a
    default of its own; the gateway has no worker."""
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    """Redis: the gateway's rate limits, inventory's catalog cache."""
    # Access tokens (shared.auth): every process verifies the gateway's RS256 tokens.
    jwt_issuer: str = "commerce-gateway"
    """The `iss` every access token must carry."""
    jwt_audience: str = "commerce-api"
    """The `aud` every access token must carry."""
    jwt_public_keys: str = ""
    """PEM public keys, concatenated, that verify tokens: the current one and, during rotation,
    the previous."""
    jwt_public_key_file: str = ""
    """A file holding such a PEM key (instead of the above)."""
    jwt_dev_key_dir: str = "var/keys"
    """Where development and test create a key pair once when no key is configured (git-ignored);
    any other environment refuses to start without a key."""

    jwt_leeway_seconds: int = Field(default=10, ge=0, le=300)
    """Clock skew allowed on `exp` and `iat`."""
    jwt_max_token_bytes: int = Field(default=8192, ge=256)
    """Longer tokens are refused before parsing."""
    jwt_verified_cache_size: int = Field(default=4096, ge=0)
    """Verified tokens remembered (until their `exp`) so a token's signature is checked once per
    process."""

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

    @property
    def redis_key_prefix(self) -> str:
        """This process's Redis keys begin ``<redis_key_prefix>:`` (``redis_key_prefix()``)."""
        return redis_key_prefix(self.broker_namespace)

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
