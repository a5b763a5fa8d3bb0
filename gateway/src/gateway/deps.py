"""Annotated dependencies for the gateway routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.config import GatewaySettings
from gateway.runtime import GatewayRuntime
from shared.deps import SessionDep


# async, like every dependency here: FastAPI runs a plain ``def`` dependency in a worker
# thread, a thread hop on every request for reading an attribute.
async def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


async def _runtime(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.runtime
    return runtime


async def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


SettingsDep = Annotated[GatewaySettings, Depends(_settings)]
RuntimeDep = Annotated[GatewayRuntime, Depends(_runtime)]
ClientAddressDep = Annotated[str, Depends(client_address)]

__all__ = ["ClientAddressDep", "RuntimeDep", "SessionDep", "SettingsDep"]
