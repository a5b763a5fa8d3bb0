"""The inventory HTTP application."""

from __future__ import annotations

from fastapi import FastAPI

from inventory.config import InventorySettings, get_settings
from shared.app import create_service_app


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    return create_service_app(settings or get_settings(), title="Inventory")
