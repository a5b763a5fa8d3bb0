"""Annotated dependencies for the inventory routes."""

from typing import Annotated

from fastapi import Depends, Request
from shared.deps import SessionDep

from inventory.config import InventorySettings


def _settings(request: Request) -> InventorySettings:
    settings: InventorySettings = request.app.state.settings
    return settings


SettingsDep = Annotated[InventorySettings, Depends(_settings)]

__all__ = ["SessionDep", "SettingsDep"]
