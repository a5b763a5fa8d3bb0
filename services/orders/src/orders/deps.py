"""Annotated dependencies for the orders routes."""

from typing import Annotated

from fastapi import Depends, Request

from orders.config import OrdersSettings
from shared.deps import EngineDep, SessionDep


# async, like every dependency here: FastAPI runs a plain ``def`` dependency in a worker
# thread, a thread hop on every request for reading an attribute.
async def _settings(request: Request) -> OrdersSettings:
    settings: OrdersSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[OrdersSettings, Depends(_settings)]

__all__ = ["EngineDep", "SessionDep", "SettingsDep"]
