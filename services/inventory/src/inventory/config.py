"""Settings of this process: `<SERVICE>_<FIELD>`, then `COMMERCE_<FIELD>`, then defaults."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import BaseServiceSettings


class InventorySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INVENTORY_")

    service_name: ClassVar[str] = "inventory"

    port: int = 8001
    db_user: str = "inventory"


@lru_cache(maxsize=1)
def get_settings() -> InventorySettings:
    """Built on first use, never at import, so tests and tools can set the environment first."""
    return InventorySettings()
