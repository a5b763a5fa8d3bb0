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
    jwt_private_key: SecretStr = SecretStr("")
    """PEM RSA private key (≥ 2048 bits) that signs access tokens; required outside development."""
    jwt_private_key_file: str = ""
    """A file holding that key (instead of the above)."""
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=86_400)
    """Access token lifetime."""
    password_hash_concurrency: int = Field(default=1, ge=1)
    """Argon2 hashes running at once per process (more starve the event loop on small machines)."""
    refresh_token_ttl_seconds: int = Field(default=14 * 86_400, ge=300)
    """Refresh token lifetime (14 days)."""
    refresh_family_lifetime_seconds: int = Field(default=30 * 86_400, ge=300)
    """Absolute lifetime of a login's refresh family (30 days), however often it is refreshed."""
    refresh_reuse_grace_seconds: float = Field(default=30.0, ge=0, le=300)
    """A spent refresh token presented again this soon (two tabs, a reload racing a renewal)
    gets the same new pair back; later, it counts as reuse and revokes its family."""

    # Routing: path prefix -> upstream base URL. The path is forwarded unchanged.
    routes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_ROUTES))
    """JSON object: path prefix → upstream origin."""
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    """Connect timeout to an upstream (then 503)."""
    upstream_read_timeout_seconds: float = Field(default=15.0, gt=0)
    """Longest wait between two reads (then 504)."""
    upstream_total_timeout_seconds: float = Field(default=30.0, gt=0)
    """Longest whole exchange (then 504)."""
    upstream_pool_size: int = Field(default=256, ge=1)
    """Pooled connections across all upstreams."""
    upstream_keepalive_seconds: float = Field(default=4.0, gt=0)
    """Idle keep-alive, below the upstreams' (uvicorn: 5 s), so the gateway never reuses a
    connection the upstream is closing."""
    upstream_buffer_bytes: int = Field(default=1_048_576, ge=0)
    """Answers up to this are buffered, larger ones streamed."""
    media_upload_max_bytes: int = Field(default=10 * 1_048_576, ge=1)
    """The body limit of `POST /api/v1/products/{sku}/media` (instead of
    `COMMERCE_MAX_BODY_BYTES`); those bodies are streamed to inventory, never buffered
    (docs/media.md)."""

    # Rate limits ("N/second", "N/minute", several separated by ";"), counted in Redis.
    rate_limit_enabled: bool = True
    """Turn rate limiting off (benchmarks only)."""
    rate_limit_api: str = "100/second;3000/minute"
    """Per user, or per address when anonymous."""
    rate_limit_login_per_address: str = "20/minute"
    """Login attempts per client address."""
    # Failed logins only (docs/identity.md): per account across all addresses, and apart
    # from it per account and address that signed in to it within the TTL below.
    rate_limit_login_failures_per_account: str = "10/15minute"
    """Failed logins per account, from all addresses."""
    rate_limit_login_failures_per_known_address: str = "10/15minute"
    """Failed logins per account from an address that signed in to it recently (a budget of its
    own, so the owner is never locked out)."""
    login_known_address_ttl_seconds: int = Field(default=30 * 86_400, ge=60)
    """How long a successful sign-in keeps its address "known" (30 days)."""
    rate_limit_auth_per_address: str = "30/minute"
    """Register and refresh per client address."""
    rate_limit_fail_open: bool = True
    """When Redis is away: let requests through (true, logged) or answer 503 (false)."""
    redis_timeout_seconds: float = Field(default=0.5, gt=0)
    """Longest wait for Redis per request."""

    cors_allow_origins: list[str] = Field(default_factory=list)
    """JSON list of allowed origins; `*` is refused."""
    cors_allow_credentials: bool = True
    """Credentialed CORS (the refresh cookie), for the listed origins only."""

    openapi_cache_seconds: float = Field(default=60.0, ge=0)
    """How long the merged document is cached."""
    gzip_min_bytes: int = Field(default=1024, ge=1)
    """Answers at least this large are gzipped when the client accepts it."""

    internal_port: int = Field(default=8100, ge=0, le=65535)
    """Port of `/health/ready` and `/metrics` (and `/health/live`); never the public one (which
    keeps `/health/live`); `0` serves them nowhere (docs/edge.md)."""

    # Limits of the HTTP server itself (gateway.compat.uvicorn): 414, 431, 408.
    http_max_request_line_bytes: int = Field(default=8190, ge=256)
    """Longer request targets are answered 414."""
    http_max_header_bytes: int = Field(default=32_768, ge=1024)
    """Larger header sections (request line included) are answered 431."""
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """Headers not complete in this time are answered 408."""

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
        """The rate limiter's Redis keys, within this namespace's (``redis_key_prefix``)."""
        return f"{self.redis_key_prefix}:ratelimit"


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    """Built on first use, never at import, so tests and tools can set the environment first."""
    return GatewaySettings()
