"""Annotated dependencies for the orders routes."""

from typing import Annotated

from fastapi import Depends

from orders.config import OrdersSettings
from shared.deps import EngineDep, SessionDep, app_settings

SettingsDep = Annotated[OrdersSettings, Depends(app_settings)]

__all__ = ["EngineDep", "SessionDep", "SettingsDep"]
