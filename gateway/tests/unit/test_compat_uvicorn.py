"""The uvicorn internals ``gateway.compat.uvicorn`` builds on are still there, unchanged.

The behaviour itself (414, 431, 408 on real sockets) is tested against a real gateway
process in ``tests/integration/test_edge_limits.py``; these fail first, and say why, when an
upgrade of uvicorn moves what the subclass hooks into.
"""

from __future__ import annotations

import inspect

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server

from gateway.compat.uvicorn import REVIEWED_UVICORN, LimitedHttpToolsProtocol, limited_protocol


def test_uvicorn_is_the_release_the_compat_module_was_reviewed_against() -> None:
    assert uvicorn.__version__ == REVIEWED_UVICORN, (
        "uvicorn changed: review gateway/compat/uvicorn.py against its httptools protocol, "
        "then update REVIEWED_UVICORN"
    )


def test_the_hooked_methods_are_uvicorns_own() -> None:
    for name in (
        "connection_made",
        "connection_lost",
        "data_received",
        "on_message_begin",
        "on_url",
        "on_header",
        "on_headers_complete",
        "on_body",
        "on_message_complete",
        "send_400_response",
    ):
        assert name in vars(HttpToolsProtocol), name
        assert name in vars(LimitedHttpToolsProtocol), name


def test_a_callback_error_still_reaches_send_400_response() -> None:
    # A refusal raised in a parser callback surfaces from feed_data as a parser error,
    # which uvicorn answers through send_400_response: the hook the refusals take over.
    assert issubclass(httptools.HttpParserCallbackError, httptools.HttpParserError)
    source = inspect.getsource(HttpToolsProtocol.data_received)
    assert "except httptools.HttpParserError" in source
    assert "self.send_400_response(" in source


def test_the_parser_state_the_limits_read_is_where_they_read_it() -> None:
    assert "self.url += url" in inspect.getsource(HttpToolsProtocol.on_url)
    begin = inspect.getsource(HttpToolsProtocol.on_message_begin)
    assert 'self.url = b""' in begin
    assert "self.headers = []" in begin
    complete = inspect.getsource(HttpToolsProtocol.on_headers_complete)
    assert "self.url" in complete
    assert "self.cycle = RequestResponseCycle(" in complete
    assert "self.server_state.default_headers" in inspect.getsource(
        HttpToolsProtocol.send_400_response
    )


def test_uvicorn_builds_the_protocol_from_the_class_it_is_given() -> None:
    startup = inspect.getsource(Server.startup)
    assert "config.http_protocol_class(" in startup
    protocol = limited_protocol(max_request_line=100, max_header_bytes=2000, header_timeout=1.5)
    config = uvicorn.Config(app=lambda: None, http=protocol)
    config.load()
    assert config.http_protocol_class is protocol
    assert (protocol.max_request_line, protocol.max_header_bytes) == (100, 2000)
    assert protocol.header_timeout == 1.5


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.calls.append(("header", name))

    def on_headers_complete(self) -> None:
        self.calls.append(("complete", b""))

    def on_chunk_header(self) -> None:
        self.calls.append(("chunk", b""))


def test_the_parser_reports_chunks_and_trailers_through_the_callbacks_the_limits_use() -> None:
    # Trailer fields reach on_header after on_headers_complete (the subclass drops them
    # there), and every chunk, the last included, calls on_chunk_header (counted).
    recorder = _Recorder()
    parser = httptools.HttpRequestParser(recorder)
    parser.feed_data(
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\nab\r\n0\r\nx-trailer: 1\r\n\r\n"
    )
    assert recorder.calls == [
        ("header", b"host"),
        ("header", b"transfer-encoding"),
        ("complete", b""),
        ("chunk", b""),
        ("chunk", b""),
        ("header", b"x-trailer"),
    ]
