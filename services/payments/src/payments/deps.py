"""Annotated dependencies for the payments routes."""

from typing import Annotated

from fastapi import Depends

from payments.config import PaymentsSettings
from shared.deps import SessionDep, app_settings

SettingsDep = Annotated[PaymentsSettings, Depends(app_settings)]

__all__ = ["SessionDep", "SettingsDep"]
