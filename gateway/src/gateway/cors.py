"""CORS for an explicit allow-list of origins: credentials for those origins only."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import Message, Send

# What only an allowed origin may be told (Starlette adds them to every answer to a request
# carrying an Origin, allowed or not; a browser ignores them without Allow-Origin, but an
# answer should not claim credentials are welcome from anywhere).
_ALLOWED_ORIGIN_ONLY = ("access-control-allow-credentials", "access-control-expose-headers")


class AllowListCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with credentials and exposed headers offered only to listed origins.

    ``*`` is refused by the settings, so the origin is never echoed for just anyone.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if not self.is_allowed_origin(request_headers["origin"]):
            for name in _ALLOWED_ORIGIN_ONLY:
                del response.headers[name]
        return response

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if (
            message["type"] != "http.response.start"
            or origin is None
            or self.is_allowed_origin(origin)
        ):
            await super().send(message, send, request_headers)
            return

        async def without_credentials(message: Message) -> None:
            headers = MutableHeaders(scope=message)
            for name in _ALLOWED_ORIGIN_ONLY:
                del headers[name]
            await send(message)

        await super().send(message, without_credentials, request_headers)
