"""Settings of this process: `<SERVICE>_<FIELD>`, then `COMMERCE_<FIELD>`, then defaults."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.cursors import CursorSettings


class InventorySettings(CursorSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_")

    service_name: ClassVar[str] = "inventory"

    port: int = 8001
    worker_port: int = 8101  # the worker's probe: /health/*, /metrics
    db_user: str = "inventory"
    # The one currency of the store: every price written must be in it.
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """The store currency; every price written must be in it."""
    # How long public catalog reads may be cached by browsers and shared caches.
    catalog_cache_max_age_seconds: int = Field(default=30, ge=0)
    """`max-age` of anonymous catalog reads."""
    # The shared catalog cache in Redis (inventory.catalog.cache): off, every read goes to
    # the database and Redis is never contacted.
    catalog_cache_enabled: bool = True
    """The shared catalog cache in Redis (docs/catalog-cache.md); `false` sends every read to the
    database and never contacts Redis."""
    # A cached product or list page (and its `available`) is never older than this: the
    # TTL, counted from the database read, backing up the invalidation after each write.
    catalog_cache_freshness_seconds: float = Field(default=2.0, gt=0, le=60)
    """A cached product or list page (its `available` included) is never older than this: the TTL
    of every value, counted from its database read, backing up the invalidation after each
    write."""
    # Per Redis call; a slower or failing Redis sends reads to the database, and is left
    # alone for catalog_cache_retry_seconds before it is tried again.
    catalog_cache_redis_timeout_seconds: float = Field(default=0.25, gt=0)
    """Per Redis call of the catalog cache; slower or failing, the read goes to the database."""
    catalog_cache_retry_seconds: float = Field(default=1.0, gt=0)
    """After a Redis failure the catalog cache leaves Redis alone this long, then tries again
    (reads meanwhile from the database)."""
    # A reservation not committed within this time is released by the worker's sweeper.
    reservation_ttl_seconds: int = Field(default=900, ge=1)
    """A reservation not committed within this is released by the sweeper."""
    sweeper_interval_seconds: float = Field(default=5.0, gt=0)
    """Pause between two sweeps of expired reservations."""
    sweeper_batch_size: int = Field(default=100, ge=1)
    """Expired reservations released per sweeper transaction."""
    # Product media (docs/media.md): a folder every replica mounts, the largest upload, and
    # the sweep of what a crash or a delete left behind (only files older than the grace,
    # so an upload in progress is never swept).
    media_root: str = "var/media"
    """The folder of product images, mounted by every inventory app and worker replica (a named
    volume in Compose, a ReadWriteMany volume in Kubernetes; docs/media.md); relative paths are
    from the working directory."""
    media_max_bytes: int = Field(default=10 * 1_048_576, ge=1)
    """The largest image upload; the body limit of the upload route (instead of
    `COMMERCE_MAX_BODY_BYTES`)."""
    media_sweep_interval_seconds: float = Field(default=300.0, gt=0)
    """Pause between two media sweeps of the worker."""
    media_sweep_grace_seconds: float = Field(default=900.0, ge=0)
    """The sweep removes only temporary files and unreferenced images older than this."""

    @property
    def catalog_cache_prefix(self) -> str:
        """The catalog cache's Redis keys, within this namespace's (``redis_key_prefix``)."""
        return f"{self.redis_key_prefix}:catalog"


@lru_cache(maxsize=1)
def get_settings() -> InventorySettings:
    """Built on first use, never at import, so tests and tools can set the environment first."""
    return InventorySettings()
