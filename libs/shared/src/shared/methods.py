"""HEAD for every GET route, and 405 answers whose ``Allow`` names every method of the path.

RFC 9110 section 9.1: a general-purpose server supports GET and HEAD, but FastAPI's routes,
unlike Starlette's, answer HEAD only where one is declared. ``HeadAsGetMiddleware`` routes a
HEAD as the GET of the same path (same dependencies, authorization, status and headers) and
sends no body; the documented operations stay as they are. Section 15.5.6: ``Allow`` lists
every method the resource supports, where Starlette names those of the first route whose
path matched; ``allowed_methods`` names those of every route.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Set on the scope while a HEAD is routed as a GET (``answers_head``).
_HEAD_KEY = "shared.head"
_NOT_COPIED_BACK = frozenset({"method", _HEAD_KEY})


def answers_head(scope: Scope) -> bool:
    """Whether the answer goes to a HEAD, whose body is never sent (so need not be read)."""
    return scope["method"] == "HEAD" or _HEAD_KEY in scope


class HeadAsGetMiddleware:
    """Answers a HEAD as the GET of the same target would be answered, without its body
    (its ``Content-Length`` stays the GET's). Innermost, so what runs outside (logs,
    metrics, the gateway's proxy) sees the HEAD it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        # A copy: the server reads the method off its own scope while the answer is sent,
        # and must go on seeing a HEAD (else it waits for the GET's Content-Length of body).
        # What routing recorded (the route, which the metrics read once the request is
        # over) is copied back.
        routed = {**scope, "method": "GET", _HEAD_KEY: True}
        try:
            await self.app(routed, receive, headers_only)
        finally:
            scope.update(
                (key, value) for key, value in routed.items() if key not in _NOT_COPIED_BACK
            )


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The ``Allow`` value for the scope's path: the methods of every route among ``routes``
    (an app's, included routers' too) whose path matches, with HEAD wherever GET is."""
    probe: Scope = {
        "type": "http",
        "path": scope["path"],
        "root_path": scope.get("root_path", ""),
        "method": "",
    }
    methods: set[str] = set()
    for route in iter_route_contexts(routes):
        route_methods = route.methods
        if route_methods and route.matches(probe)[0] is not Match.NONE:
            methods.update(route_methods)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
