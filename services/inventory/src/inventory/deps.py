"""Annotated dependencies for the inventory routes."""

from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


# For work that outlives one caller (a cache fill other requests share): its own sessions.
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]

LimitQuery = Annotated[int, Query(ge=1, le=100, description="Items per page, 1 to 100.")]

__all__ = [
    "AdminDep",
    "CursorQuery",
    "LimitQuery",
    "OptionalPrincipalDep",
    "SessionDep",
    "SessionmakerDep",
    "SettingsDep",
]
