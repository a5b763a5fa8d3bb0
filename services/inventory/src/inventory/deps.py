"""Annotated dependencies for the inventory routes."""

from typing import Annotated

from fastapi import Depends, Request

from inventory.config import InventorySettings
from shared.deps import SessionDep


def _settings(request: Request) -> InventorySettings:
    settings: InventorySettings = request.app.state.settings
    return settings


SettingsDep = Annotated[InventorySettings, Depends(_settings)]

__all__ = ["SessionDep", "SettingsDep"]
