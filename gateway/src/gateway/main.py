"""The gateway HTTP application."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.config import GatewaySettings, get_settings
from shared.app import create_service_app


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    return create_service_app(settings or get_settings(), title="Gateway")
