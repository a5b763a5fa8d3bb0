"""Annotated dependencies for the inventory routes."""

from typing import Annotated

from fastapi import Depends, Query, Request

from inventory.config import InventorySettings
from shared.auth import AdminDep, OptionalPrincipalDep
from shared.cursors import CursorQuery
from shared.deps import SessionDep


# async, like every dependency here: FastAPI runs a plain ``def`` dependency in a worker
# thread, a thread hop on every request for reading an attribute.
async def _settings(request: Request) -> InventorySettings:
    settings: InventorySettings = request.app.state.settings
    return settings


SettingsDep = Annotated[InventorySettings, Depends(_settings)]

LimitQuery = Annotated[int, Query(ge=1, le=100, description="Items per page, 1 to 100.")]

__all__ = [
    "AdminDep",
    "CursorQuery",
    "LimitQuery",
    "OptionalPrincipalDep",
    "SessionDep",
    "SettingsDep",
]
