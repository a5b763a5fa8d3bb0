from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, ConfigDict
from pydantic_settings import SettingsConfigDict

from shared.app import create_service_app
from shared.errors import DomainError
from shared.settings import BaseServiceSettings
from shared.testing import app_client


class SampleSettings(BaseServiceSettings):
    """A service as the shared library sees one; it uses the run's database as postgres."""

    model_config = SettingsConfigDict(env_prefix="SAMPLE_")
    service_name: ClassVar[str] = "sample"


class OutOfStock(DomainError):
    status = 409
    title = "Out of stock"
    type = "/problems/out-of-stock"


class Widget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    quantity: int


def sample_router() -> APIRouter:
    router = APIRouter()

    @router.get("/widgets/{widget_id}")
    async def read_widget(widget_id: int) -> dict[str, int]:
        return {"id": widget_id}

    @router.patch("/widgets/{widget_id}")
    async def rename_widget(widget_id: int, widget: Widget) -> Widget:
        return widget

    @router.post("/widgets", status_code=201)
    async def create_widget(widget: Widget) -> Widget:
        return widget

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail: password=hunter2")

    @router.get("/out-of-stock")
    async def out_of_stock() -> None:
        raise OutOfStock("SKU-1 has 0 available.")

    return router


def build_sample_app(**overrides: object) -> FastAPI:
    settings = SampleSettings(db_user="postgres", max_body_bytes=1024, **overrides)  # type: ignore[arg-type]
    return create_service_app(settings, title="Sample", routers=[sample_router()])


@pytest.fixture
async def client(database: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(build_sample_app()) as client:
        yield client
