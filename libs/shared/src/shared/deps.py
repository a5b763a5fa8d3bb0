"""FastAPI dependencies every service uses; services add their own ``deps.py`` beside."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.settings import BaseServiceSettings


# async, like every dependency here: FastAPI runs a plain ``def`` dependency in a worker
# thread, a thread hop on every request for reading an attribute.
async def app_settings(request: Request) -> BaseServiceSettings:
    """The app's settings (``app.state.settings``). A service declares its own alias with
    its settings class: ``SettingsDep = Annotated[OrdersSettings, Depends(app_settings)]``."""
    settings: BaseServiceSettings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_engine(request: Request) -> AsyncEngine:
    """The app's engine, for a route whose statements each commit alone
    (``shared.db.autocommit_connection``)."""
    engine: AsyncEngine = request.app.state.engine
    return engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
