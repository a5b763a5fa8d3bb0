"""The public port's limits, on real sockets against a real gateway process.

``python -m gateway`` as it is deployed: request line over the limit is 414, a header section
over the limit is 431 (also when it never ends), headers not complete within the timeout are
408, and a connection that sends nothing is closed. Probes and metrics answer only on the
internal port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.testing.ports import free_port
from tests.harness.wire import WireConnection

pytestmark = pytest.mark.slow

MAX_REQUEST_LINE = 2048
MAX_HEADERS = 8192
HEADER_TIMEOUT = 1.0
READ_CHUNK_SLACK = 262_144  # one read of the server's (uvloop) at most
SHOP = "http://shop.example"
PROBLEM = "application/problem+json"


@dataclass
class Gateway:
    port: int
    internal_port: int
    log: Path


@pytest.fixture(scope="module")
def gateway(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("edge-gateway")
    gateway = Gateway(free_port(), free_port(), work / "gateway.log")
    env = {
        **os.environ,
        "GATEWAY_PORT": str(gateway.port),
        "GATEWAY_INTERNAL_PORT": str(gateway.internal_port),
        "GATEWAY_JWT_DEV_KEY_DIR": str(work / "keys"),
        "GATEWAY_HTTP_MAX_REQUEST_LINE_BYTES": str(MAX_REQUEST_LINE),
        "GATEWAY_HTTP_MAX_HEADER_BYTES": str(MAX_HEADERS),
        "GATEWAY_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "GATEWAY_CORS_ALLOW_ORIGINS": json.dumps([SHOP]),
    }
    with gateway.log.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                url = f"http://127.0.0.1:{gateway.internal_port}/health/live"
                if httpx.get(url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(f"the gateway did not start:\n{gateway.log.read_text()}")
        yield gateway
    finally:
        process.terminate()
        process.wait(timeout=30)


def _connect(gateway: Gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=10)


def _answer(sock: socket.socket) -> tuple[int, bool]:
    """The status of what the server answers, and whether it closed the connection after."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return (0, True) if not data else (int(data.split(b" ")[1]), True)
        data += chunk
    status = int(data.split(b" ")[1])
    sock.settimeout(5)
    try:
        while sock.recv(65536):
            pass
        closed = True
    except TimeoutError:
        closed = False
    return status, closed


def test_a_request_line_over_the_limit_is_414_and_the_connection_closes(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        target = "/api/v1/products?q=" + "a" * MAX_REQUEST_LINE
        sock.sendall(f"GET {target} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
        assert _answer(sock) == (414, True)


def _whole_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an answer the server ends by closing the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    return int(status_line.split(" ")[1]), headers, body


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (f"GET /{'a' * MAX_REQUEST_LINE} HTTP/1.1\r\nhost: x\r\n\r\n", 414),
        (f"GET /health/live HTTP/1.1\r\nhost: x\r\nx-pad: {'b' * MAX_HEADERS}\r\n\r\n", 431),
    ],
)
def test_the_limits_refusals_are_problems_with_a_request_id(
    gateway: Gateway, request_head: str, status: int
) -> None:
    with _connect(gateway) as sock:
        sock.sendall(request_head.encode())
        answered, headers, body = _whole_answer(sock)
    assert answered == status
    assert headers["content-type"] == PROBLEM
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["request_id"] == headers["x-request-id"]
    assert int(headers["content-length"]) == len(body)


def test_the_gateways_own_get_routes_answer_head_like_get(gateway: Gateway) -> None:
    public = f"http://127.0.0.1:{gateway.port}"
    for path in ["/health/live", "/.well-known/jwks.json", "/openapi.json", "/api/v1/auth/me"]:
        got = httpx.get(f"{public}{path}")
        head = httpx.head(f"{public}{path}")
        assert (head.status_code, head.content) == (got.status_code, b""), path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers.get("content-encoding") is None, path
    assert httpx.head(f"{public}/api/v1/auth/me").status_code == 401  # the GET's check
    internal = f"http://127.0.0.1:{gateway.internal_port}"
    assert httpx.head(f"{internal}/health/ready").status_code == 200


def test_a_405_names_every_method_of_the_gateways_own_routes(gateway: Gateway) -> None:
    public = f"http://127.0.0.1:{gateway.port}"
    for method, path, allowed in [
        ("PUT", "/api/v1/auth/me", "GET, HEAD"),
        ("POST", "/.well-known/jwks.json", "GET, HEAD"),
        ("DELETE", "/health/live", "GET, HEAD"),
        ("GET", "/api/v1/auth/token", "POST"),
    ]:
        answer = httpx.request(method, f"{public}{path}")
        assert answer.status_code == 405, path
        assert answer.headers["content-type"] == PROBLEM
        assert answer.headers["allow"] == allowed, path


def test_the_public_ports_404_for_an_internal_path_carries_a_request_id(
    gateway: Gateway,
) -> None:
    public = f"http://127.0.0.1:{gateway.port}"
    answer = httpx.get(f"{public}/health/ready", headers={"x-request-id": "probe-0001"})
    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["x-request-id"] == answer.json()["request_id"] == "probe-0001"
    internal = httpx.get(f"http://127.0.0.1:{gateway.internal_port}/api/v1/products")
    assert internal.json()["request_id"] == internal.headers["x-request-id"]


@pytest.mark.parametrize(
    ("origin", "method", "status"), [("http://evil.example", "POST", 403), (SHOP, "QUERY", 400)]
)
def test_a_refused_cors_preflight_is_a_problem_with_a_request_id(
    gateway: Gateway, origin: str, method: str, status: int
) -> None:
    answer = httpx.options(
        f"http://127.0.0.1:{gateway.port}/api/v1/auth/refresh",
        headers={"Origin": origin, "Access-Control-Request-Method": method},
    )
    assert answer.status_code == status
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["request_id"] == answer.headers["x-request-id"]
    if status == 403:
        assert answer.json()["type"] == "/problems/forbidden-origin"
        assert "access-control-allow-origin" not in answer.headers
    allowed = httpx.options(
        f"http://127.0.0.1:{gateway.port}/api/v1/auth/refresh",
        headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"},
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SHOP


def test_a_header_section_over_the_limit_is_431_and_the_connection_closes(
    gateway: Gateway,
) -> None:
    with _connect(gateway) as sock:
        padding = "".join(f"x-pad-{n}: {'b' * 100}\r\n" for n in range(MAX_HEADERS // 100))
        sock.sendall(f"GET /health/live HTTP/1.1\r\nhost: x\r\n{padding}\r\n".encode())
        assert _answer(sock) == (431, True)


def _bytes_sent_until_refused(sock: socket.socket) -> int | None:
    """Send a value that never ends; how much went before the gateway closed (None: never)."""
    sent = 0
    while sent < 4 * 1024 * 1024:
        try:
            sock.sendall(b"c" * 4096)
        except (ConnectionResetError, BrokenPipeError):  # the gateway has closed
            return sent
        sent += 4096
        time.sleep(0.001)
    return None


def test_headers_that_never_end_are_refused_once_past_the_limit(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\nx-endless: ")
        sent = _bytes_sent_until_refused(sock)
    assert sent is not None
    assert sent <= MAX_HEADERS + READ_CHUNK_SLACK + 4096 * 64  # plus what was in flight


def test_headers_not_complete_within_the_timeout_are_408(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        started = time.monotonic()
        # A byte now and then, as a slow-headers attack sends them: the clock still runs.
        sock.sendall(b"GET /health/live HTTP/1.1\r\n")
        for _ in range(3):
            time.sleep(HEADER_TIMEOUT / 4)
            sock.sendall(b"x-slow: 1\r\n")
        status, closed = _answer(sock)
        assert (status, closed) == (408, True)
        assert time.monotonic() - started < HEADER_TIMEOUT + 3


def test_the_next_request_on_a_kept_alive_connection_has_the_same_header_timeout(
    gateway: Gateway,
) -> None:
    with _connect(gateway) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(HEADER_TIMEOUT * 1.5)  # idle: within uvicorn's keep-alive (5 s)
        started = time.monotonic()
        sock.sendall(b"GET /health/live HTTP/1.1\r\n")
        assert _answer(sock) == (408, True)
        assert HEADER_TIMEOUT * 0.8 < time.monotonic() - started < HEADER_TIMEOUT + 3


def test_a_connection_that_never_sends_a_byte_is_closed_after_the_timeout(
    gateway: Gateway,
) -> None:
    with _connect(gateway) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert HEADER_TIMEOUT * 0.8 < time.monotonic() - started < HEADER_TIMEOUT + 3


def test_requests_within_the_limits_are_served_on_one_kept_alive_connection(
    gateway: Gateway,
) -> None:
    padding = {f"x-pad-{n}": "d" * 100 for n in range(MAX_HEADERS // 200)}
    with WireConnection("127.0.0.1", gateway.port) as wire:
        for _ in range(3):
            answer = wire.request("GET", "/health/live?" + "q" * 1000, padding)
            assert answer.status == 200
            time.sleep(HEADER_TIMEOUT / 2)  # idle between requests is not a header timeout
            assert wire.kept_alive


def test_probes_and_metrics_answer_on_the_internal_port_only(gateway: Gateway) -> None:
    public = f"http://127.0.0.1:{gateway.port}"
    internal = f"http://127.0.0.1:{gateway.internal_port}"
    assert httpx.get(f"{public}/metrics").status_code == 404
    assert httpx.get(f"{public}/health/ready").status_code == 404
    assert httpx.get(f"{public}/health/live").status_code == 200
    assert httpx.get(f"{internal}/metrics").status_code == 200
    assert httpx.get(f"{internal}/health/ready").status_code == 200
    assert httpx.get(f"{internal}/api/v1/products").status_code == 404
    assert httpx.get(f"{internal}/docs").status_code == 404


def _post_with_length(gateway: Gateway, path: str, length: str, body: bytes) -> tuple[int, bool]:
    with _connect(gateway) as sock:
        head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        sock.sendall(f"{head}content-length: {length}\r\n\r\n".encode() + body)
        return _answer(sock)


# Leading zeros are legal in Content-Length and the parser takes any number of them, while
# Python's int() refuses more than 4,300 digits.
PADDING = "0" * 4400


def test_a_content_length_padded_with_zeros_is_read_as_its_number(gateway: Gateway) -> None:
    status, _ = _post_with_length(gateway, "/api/v1/auth/register", PADDING + "2", b"{}")
    assert status == 422  # the body was read: two bytes, an object without its fields


@pytest.mark.parametrize("path", ["/api/v1/auth/register", "/api/v1/products"])
def test_a_padded_content_length_over_the_limit_is_413(gateway: Gateway, path: str) -> None:
    assert _post_with_length(gateway, path, PADDING + "99999999", b"")[0] == 413


def _chunked_head(path: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        "transfer-encoding: chunked\r\n\r\n"
    ).encode()


def test_a_trailer_section_over_the_header_limit_is_431_and_the_connection_closes(
    gateway: Gateway,
) -> None:
    # Fields after the last chunk are a header section too: without a bound, one connection
    # could fill the gateway's memory with them.
    with _connect(gateway) as sock:
        sock.sendall(_chunked_head("/api/v1/auth/register") + b"2\r\n{}\r\n0\r\n")
        sock.sendall(b"x-pad: b\r\n" * (2 * MAX_HEADERS // 10))
        assert _answer(sock) == (431, True)


def test_a_trailer_that_never_ends_is_refused_once_past_the_limit(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        sock.sendall(_chunked_head("/api/v1/auth/register") + b"0\r\nx-endless: ")
        sent = _bytes_sent_until_refused(sock)
    assert sent is not None
    assert sent <= MAX_HEADERS + READ_CHUNK_SLACK + 4096 * 64  # plus what was in flight


def test_a_body_of_many_small_chunks_with_a_short_trailer_is_served(gateway: Gateway) -> None:
    body = b'{"email": "chunks@example.com", "password": "a long enough password"}'
    chunks = b"".join(b"1\r\n%c\r\n" % byte for byte in body)
    with _connect(gateway) as sock:
        sock.sendall(_chunked_head("/api/v1/auth/register") + chunks + b"0\r\nx-t: 1\r\n\r\n")
        status, _ = _answer(sock)
    assert status in (201, 409)  # registered now, or by an earlier run against this database
