"""A FastAPI application whose middleware stack its subclass composes, and which hands an
HTTP request straight to that stack.

Starlette builds the stack once, lazily, in ``build_middleware_stack`` (not a documented
hook), from ``user_middleware`` (the list ``add_middleware`` and the constructor fill);
FastAPI's and Starlette's ``__call__`` then only set ``scope["app"]``, check that the stack
exists and (FastAPI) look at telemetry, which the platform turns off. The gateway composes a
second, shorter stack for proxied requests from the same middleware
(``gateway.proxy.front``), and skips those calls on every request.

``gateway/tests/unit/test_compat_starlette.py`` checks the internals this relies on.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

# The releases this module was read against; the test fails on any other.
REVIEWED_STARLETTE = "1.10.0"
REVIEWED_FASTAPI = "0.165.0"


def wrap(app: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
    """``app`` inside ``middleware``, the first one outermost (as Starlette stacks them)."""
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
    return app


class ComposedStackApp(FastAPI):
    """FastAPI whose stack is what ``compose_stack`` makes of the one FastAPI builds."""

    def compose_stack(self, full: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
        """The stack to serve: ``full`` is FastAPI's own, ``middleware`` what the app
        was given, outermost first."""
        return full

    def build_middleware_stack(self) -> ASGIApp:
        return self.compose_stack(super().build_middleware_stack(), list(self.user_middleware))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stack = self.middleware_stack
        if stack is None or scope["type"] != "http" or self.root_path:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await stack(scope, receive, send)
