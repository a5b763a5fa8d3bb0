"""The orders HTTP application."""

from __future__ import annotations

from fastapi import FastAPI

from orders.config import OrdersSettings, get_settings
from shared.app import create_service_app


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    return create_service_app(settings or get_settings(), title="Orders")
