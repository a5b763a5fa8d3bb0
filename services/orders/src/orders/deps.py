"""Annotated dependencies for the orders routes."""

from typing import Annotated

from fastapi import Depends, Request

from orders.config import OrdersSettings
from shared.deps import SessionDep


def _settings(request: Request) -> OrdersSettings:
    settings: OrdersSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[OrdersSettings, Depends(_settings)]

__all__ = ["SessionDep", "SettingsDep"]
