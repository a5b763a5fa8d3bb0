"""Annotated dependencies for the payments routes."""

from typing import Annotated

from fastapi import Depends, Request

from payments.config import PaymentsSettings
from shared.deps import SessionDep


def _settings(request: Request) -> PaymentsSettings:
    settings: PaymentsSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[PaymentsSettings, Depends(_settings)]

__all__ = ["SessionDep", "SettingsDep"]
