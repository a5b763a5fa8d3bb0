"""Annotated dependencies for the payments routes."""

from typing import Annotated

from fastapi import Depends, Request

from payments.config import PaymentsSettings
from shared.deps import SessionDep


# async, like every dependency here: FastAPI runs a plain ``def`` dependency in a worker
# thread, a thread hop on every request for reading an attribute.
async def _settings(request: Request) -> PaymentsSettings:
    settings: PaymentsSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[PaymentsSettings, Depends(_settings)]

__all__ = ["SessionDep", "SettingsDep"]
