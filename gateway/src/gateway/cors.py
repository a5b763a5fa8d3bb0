"""CORS for an explicit allow-list of origins: credentials for those origins only."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import Message, Send

from gateway.identity.exceptions import ForbiddenOrigin
from shared.context import accepted_request_id
from shared.errors import problem_response

# What only an allowed origin may be told (Starlette adds them to every answer to a request
# carrying an Origin, allowed or not; a browser ignores them without Allow-Origin, but an
# answer should not claim credentials are welcome from anywhere).
_ALLOWED_ORIGIN_ONLY = ("access-control-allow-credentials", "access-control-expose-headers")


class AllowListCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with credentials and exposed headers offered only to listed origins,
    and a refused preflight answered as a problem (403 for an origin not on the list, 400
    for a method or header not allowed) instead of Starlette's plain text.

    ``*`` is refused by the settings, so the origin is never echoed for just anyone.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        allowed_origin = self.is_allowed_origin(request_headers["origin"])
        if not allowed_origin:
            for name in _ALLOWED_ORIGIN_ONLY:
                del response.headers[name]
        if response.status_code != 400:
            return response
        # Answered before the request id middleware (CORS is outermost): the id is given here.
        request_id = accepted_request_id(request_headers.get("x-request-id"))
        headers = {
            name: value
            for name, value in response.headers.items()
            if name not in ("content-type", "content-length")
        }
        if not allowed_origin:
            return problem_response(
                403,
                "Cross-origin requests are not allowed from this Origin.",
                type_=ForbiddenOrigin.type,
                headers=headers,
                request_id=request_id,
            )
        detail = bytes(response.body).decode("latin-1")  # Starlette names what it refused
        return problem_response(400, f"{detail}.", headers=headers, request_id=request_id)

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
