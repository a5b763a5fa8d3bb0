"""The Starlette and FastAPI internals ``gateway.compat.starlette`` builds on are still
there, unchanged, and a composed stack serves what it composes.

The gateway's own stacks are tested through its proxy and routes (``tests/integration``);
these fail first, and say why, when an upgrade moves what the compat module hooks into.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import ClassVar

import fastapi
import httpx
import starlette
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.compat.starlette import (
    REVIEWED_FASTAPI,
    REVIEWED_STARLETTE,
    ComposedStackApp,
    wrap,
)


def test_the_releases_are_the_ones_the_compat_module_was_reviewed_against() -> None:
    assert (starlette.__version__, fastapi.__version__) == (
        REVIEWED_STARLETTE,
        REVIEWED_FASTAPI,
    ), (
        "Starlette or FastAPI changed: review gateway/compat/starlette.py against "
        "build_middleware_stack, user_middleware and __call__, then update REVIEWED_*"
    )


def test_the_stack_is_still_built_once_lazily_from_user_middleware() -> None:
    call = inspect.getsource(Starlette.__call__)
    assert 'scope["app"] = self' in call
    assert "self.middleware_stack = self.build_middleware_stack()" in call
    assert "await self.middleware_stack(scope, receive, send)" in call
    build = inspect.getsource(Starlette.build_middleware_stack)
    assert "self.user_middleware" in build
    assert "for cls, args, kwargs in reversed(middleware):" in build
    add = inspect.getsource(Starlette.add_middleware)
    assert "self.user_middleware.insert(0, Middleware(" in add


def test_fastapi_adds_nothing_to_an_http_request_without_telemetry_or_root_path() -> None:
    call = inspect.getsource(FastAPI.__call__)
    assert "if self.root_path:" in call
    assert "not self._native_telemetry.enabled()" in call
    assert "await super().__call__(scope, receive, send)" in call


class Tag:
    """Adds its name to a header of the answer."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-tag", self.name.encode())]
            await send(message)

        await self.app(scope, receive, tagged)


async def _plain(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("short")(scope, receive, send)


class ShortForPlain(ComposedStackApp):
    composed: ClassVar[list[list[Middleware]]] = []

    def compose_stack(self, full: ASGIApp, user_middleware: Sequence[Middleware]) -> ASGIApp:
        self.composed.append(list(user_middleware))
        short = wrap(_plain, [m for m in user_middleware if m.kwargs["name"] != "skip"])

        async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
            short_path = scope["type"] == "http" and scope["path"] == "/plain"
            await (short if short_path else full)(scope, receive, send)

        return dispatch


async def test_a_composed_stack_serves_both_paths_built_once_in_stack_order() -> None:
    app = ShortForPlain(middleware=[Middleware(Tag, name="inner")])
    app.add_middleware(Tag, name="skip")
    app.add_middleware(Tag, name="outer")

    @app.get("/full")
    async def full() -> str:
        return "full"

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        plain = await client.get("/plain")
        assert plain.text == "short"
        assert plain.headers.get_list("x-tag") == ["inner", "outer"]
        routed = await client.get("/full")
        assert routed.json() == "full"
        assert routed.headers.get_list("x-tag") == ["inner", "skip", "outer"]
        await client.get("/plain")
    assert [[m.kwargs["name"] for m in stack] for stack in app.composed] == [
        ["outer", "skip", "inner"]
    ]
