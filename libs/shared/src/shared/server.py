"""Run an app under uvicorn with the platform's logging (``python -m <service>``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from shared.logging import configure_logging
from shared.settings import BaseServiceSettings
from shared.tracing import configure_tracing, shutdown_tracing, tracing_enabled
from shared.tracing.http import traced_app

GRACEFUL_SHUTDOWN_SECONDS = 20

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)


class Server(uvicorn.Server):
    """uvicorn's server, which exports the spans still queued once it has shut down: uvicorn
    then re-raises the SIGTERM it stopped on, which ends the process before the SDK's exit
    hook would have run."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
        finally:
            # A thread: the export is a blocking HTTP request, bounded by the exporter's timeout.
            if tracing_enabled():
                await asyncio.to_thread(shutdown_tracing)


def serve(create_app: Callable[[SettingsT], FastAPI], settings: SettingsT) -> None:
    configure_logging(settings)
    configure_tracing(settings.service_name)  # only if OTEL_* ask for it (shared.tracing)
    app = create_app(settings)
    config = uvicorn.Config(
        traced_app(app),  # server spans only if tracing is on
        host=settings.host,
        port=settings.port,
        log_config=None,  # keep the handlers configure_logging installed
        access_log=False,  # RequestContextMiddleware logs each request with its id
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    Server(config).run()
