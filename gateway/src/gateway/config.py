"""Settings of this process: `<SERVICE>_<FIELD>`, then `COMMERCE_<FIELD>`, then defaults."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import (
    DEVELOPMENT_ADMIN_EMAIL,
    DEVELOPMENT_ADMIN_PASSWORD,
    BaseServiceSettings,
)

INVENTORY = "http://127.0.0.1:8001"
ORDERS = "http://127.0.0.1:8002"
PAYMENTS = "http://127.0.0.1:8003"

DEFAULT_ROUTES = {
    "/api/v1/products": INVENTORY,
    "/api/v1/inventory": INVENTORY,
    "/api/v1/media": INVENTORY,
    "/api/v1/orders": ORDERS,
    "/api/v1/payments": PAYMENTS,
}


class GatewaySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    service_name: ClassVar[str] = "gateway"

    port: int = 8000
    db_user: str = "gateway"

    # Signing. Without a key, development and test use the shared development key pair
    # (see shared.auth.ensure_development_keys); elsewhere the empty key is refused.
    jwt_private_key: SecretStr = SecretStr("")  # PEM, RSA >= 2048 bits
    jwt_private_key_file: str = ""
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    # Argon2 hashes running at once in this process (each keeps a core busy while it runs).
    password_hash_concurrency: int = Field(default=1, ge=1)
    refresh_token_ttl_seconds: int = Field(default=14 * 86_400, ge=300)  # idle: per token
    # Absolute: a login's refresh family ends this long after the login, however often used.
    refresh_family_lifetime_seconds: int = Field(default=30 * 86_400, ge=300)
    # A spent refresh token presented again this soon gets the same new pair back (two tabs,
    # a reload racing a renewal); later, it counts as reuse and revokes its family.
    refresh_reuse_grace_seconds: float = Field(default=30.0, ge=0, le=300)

    # Routing: path prefix -> upstream base URL. The path is forwarded unchanged.
    routes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ROUTES))
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    upstream_read_timeout_seconds: float = Field(default=15.0, gt=0)  # between two reads
    upstream_total_timeout_seconds: float = Field(default=30.0, gt=0)  # whole exchange
    upstream_pool_size: int = Field(default=256, ge=1)  # connections across all upstreams
    # Below the upstreams' keep-alive (uvicorn: 5 s), so the gateway never reuses a
    # connection the upstream is closing.
    upstream_keepalive_seconds: float = Field(default=4.0, gt=0)
    upstream_buffer_bytes: int = Field(default=1_048_576, ge=0)  # larger responses stream
    # Media uploads (POST /api/v1/products/{sku}/media) are streamed to the upstream, never
    # buffered, and have this limit instead of max_body_bytes (docs/media.md).
    media_upload_max_bytes: int = Field(default=10 * 1_048_576, ge=1)

    # Rate limits ("N/second", "N/minute", several separated by ";"), counted in Redis.
    rate_limit_enabled: bool = True
    rate_limit_api: str = "100/second;3000/minute"  # per user, or per address when anonymous
    rate_limit_login_per_address: str = "20/minute"
    # Failed logins only (docs/identity.md): per account across all addresses, and apart
    # from it per account and address that signed in to it within the TTL below.
    rate_limit_login_failures_per_account: str = "10/15minute"
    rate_limit_login_failures_per_known_address: str = "10/15minute"
    login_known_address_ttl_seconds: int = Field(default=30 * 86_400, ge=60)
    rate_limit_auth_per_address: str = "30/minute"  # register and refresh
    # When Redis is away: True lets requests through (logged), False answers 503.
    rate_limit_fail_open: bool = True
    redis_timeout_seconds: float = Field(default=0.5, gt=0)

    # CORS: an explicit allow-list of origins; "*" is refused.
    cors_allow_origins: list[str] = Field(default_factory=list)
    # Credentials (the refresh cookie) are allowed for the listed origins only.
    cors_allow_credentials: bool = True

    openapi_cache_seconds: float = Field(default=60.0, ge=0)
    gzip_min_bytes: int = Field(default=1024, ge=1)

    # /health/ready and /metrics are answered on this port only, never on the public one
    # (which keeps /health/live); 0 serves them nowhere. See docs/edge.md.
    internal_port: int = Field(default=8100, ge=0, le=65535)
    # Limits of the HTTP server itself (gateway.compat.uvicorn): 414, 431, 408.
    http_max_request_line_bytes: int = Field(default=8190, ge=256)
    http_max_header_bytes: int = Field(default=32_768, ge=1024)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, routes: dict[str, str]) -> dict[str, str]:
        for prefix, upstream in routes.items():
            if not prefix.startswith("/") or prefix.endswith("/"):
                raise ValueError(f"route prefix {prefix!r} must start and not end with '/'")
            parts = urlsplit(upstream)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"upstream of {prefix!r} must be an http(s) URL: {upstream!r}")
            if parts.path not in ("", "/") or parts.query:
                raise ValueError(f"upstream of {prefix!r} must be a bare origin: {upstream!r}")
        return routes

    @field_validator(
        "rate_limit_api",
        "rate_limit_login_per_address",
        "rate_limit_login_failures_per_account",
        "rate_limit_login_failures_per_known_address",
        "rate_limit_auth_per_address",
    )
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        parse_many(value)  # raises ValueError on a malformed limit
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("list the allowed origins explicitly; '*' is refused")
        return origins

    @model_validator(mode="after")
    def _check_internal_port(self) -> GatewaySettings:
        if self.internal_port == self.port:
            raise ValueError("internal_port must differ from port: it is not for the public")
        return self

    def key_settings(self) -> dict[str, str]:
        keys = {
            **super().key_settings(),
            "jwt_private_key": self.jwt_private_key.get_secret_value(),
        }
        if self.jwt_private_key_file:
            keys["jwt_private_key_file"] = f"file:{self.jwt_private_key_file}"
        return keys

    def refuses_admin(self, email: str, password: str) -> str | None:
        """Why ``create-admin`` must not create this admin here (None: it may). Production
        refuses the development admin of ``make seed``, by its address or its password."""
        if self.is_development:
            return None
        if email.lower() == DEVELOPMENT_ADMIN_EMAIL or password == DEVELOPMENT_ADMIN_PASSWORD:
            return f"the development admin is refused in {self.environment}"
        return None

    def secrets(self) -> dict[str, str]:
        signing_key = self.jwt_private_key.get_secret_value()
        if not signing_key and self.jwt_private_key_file:
            signing_key = "<from file>"
        return {**super().secrets(), "jwt_private_key": signing_key}

    @property
    def rate_limit_prefix(self) -> str:
        """Redis key prefix: test runs and deployments sharing one Redis never collide."""
        return f"commerce:{self.broker_namespace or 'default'}:ratelimit"


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    """Built on first use, never at import, so tests and tools can set the environment first."""
    return GatewaySettings()
