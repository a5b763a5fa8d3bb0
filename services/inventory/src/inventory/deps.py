"""Annotated dependencies for the inventory routes."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.config import InventorySettings
from shared.deps import SessionDep, app_settings

SettingsDep = Annotated[InventorySettings, Depends(app_settings)]


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


# For work that outlives one caller (a cache fill other requests share): its own sessions.
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]

__all__ = ["SessionDep", "SessionmakerDep", "SettingsDep"]
