"""HEAD answered for every GET route, and 405s whose Allow names every method of the path."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import Message, Receive, Scope, Send

from shared.errors import PROBLEM_CONTENT_TYPE
from shared.methods import HeadAsGetMiddleware, answers_head


def _without_request_id(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name != "x-request-id"}


async def test_a_head_is_answered_as_its_get_with_the_same_headers_and_no_body(
    client: httpx.AsyncClient,
) -> None:
    got = await client.get("/widgets/7")
    head = await client.head("/widgets/7")
    assert (head.status_code, head.content) == (200, b"")
    assert _without_request_id(head) == _without_request_id(got)
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["x-request-id"]


async def test_a_head_meets_the_errors_its_get_meets(client: httpx.AsyncClient) -> None:
    for path, status in [("/widgets/abc", 422), ("/no-such-thing", 404)]:
        head = await client.head(path)
        assert head.status_code == status
        assert head.headers["content-type"] == PROBLEM_CONTENT_TYPE
        assert head.content == b""


async def test_a_head_is_counted_as_a_head_of_its_route(client: httpx.AsyncClient) -> None:
    await client.head("/widgets/8")
    metrics = (await client.get("/metrics")).text
    assert 'method="HEAD",route="/widgets/{widget_id}",status="200"' in metrics


async def test_allow_names_the_methods_of_every_route_of_the_path(
    client: httpx.AsyncClient,
) -> None:
    # GET and PATCH are two routes of one path: Starlette alone names the first one's.
    response = await client.put("/widgets/1")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["allow"] == "GET, HEAD, PATCH"
    assert (await client.delete("/widgets")).headers["allow"] == "POST"
    assert (await client.post("/health/live")).headers["allow"] == "GET, HEAD"


async def test_a_head_reaches_the_route_as_a_get_that_knows_its_body_is_not_sent() -> None:
    seen: list[tuple[str, bool]] = []

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope["method"], answers_head(scope)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a" * 10, "more_body": True})
        await send({"type": "http.response.body", "body": b"b" * 10})

    sent: list[Message] = []

    async def collect(message: Message) -> None:
        sent.append(message)

    async def nothing() -> Message:
        return {"type": "http.request", "body": b""}

    scope: Scope = {"type": "http", "method": "HEAD", "path": "/", "headers": []}
    await HeadAsGetMiddleware(streaming)(scope, nothing, collect)
    assert seen == [("GET", True)]
    assert [message.get("body", None) for message in sent] == [None, b""]
    assert scope["method"] == "HEAD"
    assert not answers_head({**scope, "method": "GET"})


async def test_on_a_real_server_heads_leave_the_connection_usable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The server reads the method off its own scope while the answer is sent: were it told
    # GET, it would wait for the GET's Content-Length of body, fail the request and close.
    app = FastAPI(middleware=[Middleware(HeadAsGetMiddleware)])

    @app.get("/thing")
    async def thing() -> dict[str, str]:
        return {"name": "a thing with a body"}

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # connections wait in the backlog until the server accepts them
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, http="httptools", log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = "{} /thing HTTP/1.1\r\nHost: test\r\n\r\n"
        writer.write("".join(request.format(m) for m in ("HEAD", "HEAD", "GET")).encode())
        await writer.drain()
        answers = await asyncio.wait_for(reader.read(65_536), 5)
        while answers.count(b"HTTP/1.1 200") < 3 or not answers.endswith(b"}"):
            more = await asyncio.wait_for(reader.read(65_536), 5)
            assert more, f"the connection closed after {answers!r}"
            answers += more
        writer.close()
    finally:
        server.should_exit = True
        await serving
    assert answers.count(b"HTTP/1.1 200") == 3
    assert answers.count(b'"name"') == 1  # the GET's body, none for the HEADs
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
