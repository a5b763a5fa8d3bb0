"""The inventory HTTP application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from inventory.catalog.cache import CatalogCache
from inventory.catalog.router import router as catalog_router
from inventory.config import InventorySettings, get_settings
from inventory.media.router import UPLOAD_PATH, media_router, products_router
from inventory.media.storage import MediaStorage
from inventory.products import staleness
from inventory.stock.router import router as stock_router
from shared.app import create_service_app


def create_app(settings: InventorySettings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def catalog_cache(app: FastAPI) -> AsyncIterator[None]:
        # Optional, so not a readiness check: with Redis away, reads go to the database.
        cache = CatalogCache(settings)
        app.state.catalog_cache = cache
        staleness.attach(app.state.engine, cache.invalidate)
        try:
            yield
        finally:
            staleness.detach(app.state.engine)
            await cache.close()

    app = create_service_app(
        settings,
        title="Inventory",
        routers=[catalog_router, stock_router, products_router, media_router],
        body_limits=[(UPLOAD_PATH, settings.media_max_bytes)],
        extra_lifespan=catalog_cache,
    )
    app.state.media_storage = MediaStorage(settings.media_root)
    return app
