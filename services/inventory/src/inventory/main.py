"""The inventory HTTP application."""

from __future__ import annotations

from fastapi import FastAPI

from inventory.catalog.router import router as catalog_router
from inventory.config import InventorySettings, get_settings
from inventory.stock.router import router as stock_router
from shared.app import create_service_app


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    return create_service_app(
        settings or get_settings(), title="Inventory", routers=[catalog_router, stock_router]
    )
