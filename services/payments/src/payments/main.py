"""The payments HTTP application."""

from __future__ import annotations

from fastapi import FastAPI

from payments.config import PaymentsSettings, get_settings
from shared.app import create_service_app


def create_app(settings: PaymentsSettings | None = None) -> FastAPI:
    return create_service_app(settings or get_settings(), title="Payments")
