"""Settings of this process: `<SERVICE>_<FIELD>`, then `COMMERCE_<FIELD>`, then defaults."""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import BaseServiceSettings


class GatewaySettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    service_name: ClassVar[str] = "gateway"

    port: int = 8000
    db_user: str = "gateway"


@lru_cache(maxsize=1)
def get_settings() -> GatewaySettings:
    """Built on first use, never at import, so tests and tools can set the environment first."""
    return GatewaySettings()
