"""The gateway's HTTP server: uvicorn on two sockets, the public port and the internal one.

One server (one event loop, one lifespan) listens on both; the application tells them apart
by the port a request arrived on (``gateway.proxy.front``). Both speak uvicorn's httptools
protocol with the limits of ``gateway.compat.uvicorn``.
"""

from __future__ import annotations

import socket

import uvicorn

from gateway.compat.uvicorn import limited_protocol
from gateway.config import GatewaySettings
from gateway.main import create_app
from shared.logging import configure_logging
from shared.server import GRACEFUL_SHUTDOWN_SECONDS, Server
from shared.tracing import configure_tracing


def build_server(settings: GatewaySettings) -> Server:
    """The server for ``settings``, not started (``bind`` gives it its sockets); it exports
    the spans still queued when it shuts down (``shared.server.Server``)."""
    protocol = limited_protocol(
        max_request_line=settings.http_max_request_line_bytes,
        max_header_bytes=settings.http_max_header_bytes,
        header_timeout=settings.http_header_timeout_seconds,
    )
    config = uvicorn.Config(
        create_app(settings),
        log_config=None,  # keep the handlers configure_logging installed
        access_log=False,  # RequestContextMiddleware logs each request with its id
        loop="uvloop",
        http=protocol,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return Server(config)


def bind(settings: GatewaySettings) -> list[socket.socket]:
    """Listening sockets: the public port, then the internal one (unless it is 0)."""
    ports = [settings.port] + ([settings.internal_port] if settings.internal_port else [])
    sockets = []
    for port in ports:
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, port))
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def serve(settings: GatewaySettings) -> None:
    configure_logging(settings)
    configure_tracing(settings.service_name)  # only if OTEL_* ask for it (shared.tracing)
    build_server(settings).run(sockets=bind(settings))
