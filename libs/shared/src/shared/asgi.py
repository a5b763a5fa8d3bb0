"""Pure-ASGI middleware (no BaseHTTPMiddleware: it breaks contextvars and streaming)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.context import accepted_request_id, request_id_var
from shared.errors import internal_error_response, problem_response
from shared.metrics import record_request

REQUEST_ID_HEADER = "x-request-id"

logger = logging.getLogger("shared.access")


def header_value(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (``name`` in lower case), as sent."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def request_id_of(scope: Scope) -> str:
    """The request's id: its ``X-Request-ID`` when well formed, otherwise a new one."""
    offered = header_value(scope, REQUEST_ID_HEADER.encode())
    return accepted_request_id(offered.decode("latin-1") if offered else None)


class RequestContextMiddleware:
    """Gives every request an id, logs it, counts it in the metrics, and turns an
    unexpected exception into a 500.

    The id is taken from ``X-Request-ID`` when well formed, otherwise generated; it is put in
    a contextvar (for logs and events), in ``scope["state"]`` and echoed on the response.
    Exceptions are caught here rather than left to Starlette's outermost error middleware,
    which runs outside this one: that way the 500 still carries the request id, and the
    traceback is logged once, as JSON, with the id.
    """

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            logger.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not response_started:
                await internal_error_response()(scope, receive, send_with_request_id)
        finally:
            elapsed = time.perf_counter() - started
            record_request(scope, status=status, seconds=elapsed)
            if self.access_log:
                logger.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "http_method": scope["method"],
                        "http_path": scope["path"],
                        "http_status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                    },
                )
            request_id_var.reset(token)


class RequestBodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds the limit of {limit} bytes.")


# Longer than any body this platform accepts; lengths past it are all "too large".
_MAX_LENGTH_DIGITS = 18
_OVER_EVERY_LIMIT: int = 10**_MAX_LENGTH_DIGITS


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length`` as a number; None when absent.

    Raises ``ValueError`` when it is not a number. Leading zeros are legal and parsers accept
    any number of them, while ``int()`` refuses more than 4,300 digits: they are stripped
    first, and a length of more digits than any limit is clamped to a value over every limit.
    """
    declared = header_value(scope, b"content-length")
    if declared is None:
        return None
    if not declared.isdigit():
        raise ValueError("Content-Length is not a number.")
    digits = declared.lstrip(b"0") or b"0"
    if len(digits) > _MAX_LENGTH_DIGITS:
        return _OVER_EVERY_LIMIT
    return int(digits)


def declared_length_refusal(scope: Scope, max_body_bytes: int) -> Response | None:
    """The problem answer for a ``Content-Length`` that is not a number or over the limit,
    before anything is read; None when the declared length (if any) is acceptable."""
    try:
        declared = declared_length(scope)
    except ValueError as exc:
        return problem_response(400, str(exc))
    if declared is not None and declared > max_body_bytes:
        return problem_response(413, RequestBodyTooLarge(max_body_bytes).detail)
    return None


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_body_bytes`` with 413, whether declared or streamed.

    uvicorn has no limit of its own. A declared ``Content-Length`` over the limit is refused
    before anything is read; a chunked body is counted as it arrives. ``route_limits``: paths
    (regular expressions, matched whole) with a limit of their own, such as an upload route.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        route_limits: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.route_limits = tuple((re.compile(path), limit) for path, limit in route_limits)

    def _limit(self, path: str) -> int:
        for pattern, limit in self.route_limits:
            if pattern.fullmatch(path):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        max_body_bytes = self._limit(scope["path"]) if self.route_limits else self.max_body_bytes
        refusal = declared_length_refusal(scope, max_body_bytes)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body_bytes:
                    raise RequestBodyTooLarge(max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except RequestBodyTooLarge as exc:
            if response_started:
                raise
            await problem_response(413, exc.detail)(scope, receive, send)
