"""Run an app under uvicorn with the platform's logging (``python -m <service>``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from shared.logging import configure_logging
from shared.settings import BaseServiceSettings
from shared.tracing import configure_tracing, traced_app

GRACEFUL_SHUTDOWN_SECONDS = 20

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)


def serve(create_app: Callable[[SettingsT], FastAPI], settings: SettingsT) -> None:
    configure_logging(settings)
    configure_tracing(settings.service_name)  # only if OTEL_* ask for it (shared.tracing)
    app = create_app(settings)
    uvicorn.run(
        traced_app(app),  # server spans only if tracing is on
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the handlers configure_logging installed
        access_log=False,  # RequestContextMiddleware logs each request with its id
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
