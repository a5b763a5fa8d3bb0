"""Annotated dependencies for the gateway routes."""

from typing import Annotated

from fastapi import Depends, Request

from gateway.config import GatewaySettings
from shared.deps import SessionDep


def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


SettingsDep = Annotated[GatewaySettings, Depends(_settings)]

__all__ = ["SessionDep", "SettingsDep"]
