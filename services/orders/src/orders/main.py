"""The orders HTTP application."""

from __future__ import annotations

from fastapi import FastAPI

from orders.config import OrdersSettings, get_settings
from orders.order.router import router as order_router
from shared.app import create_service_app


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    # No broker here: the app only writes events to the outbox; the worker publishes them.
    return create_service_app(settings or get_settings(), title="Orders", routers=[order_router])
