"""Routing to upstreams: what is forwarded, what is not, and failures as problem+json."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from jose import jwt

from gateway.config import GatewaySettings
from gateway.main import create_app
from shared.testing import app_client

Tokens = Callable[[], Awaitable[dict[str, Any]]]


def _headers(echo: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in echo["headers"]:
        found.setdefault(name, []).append(value)
    return found


async def test_method_path_query_body_and_headers_are_forwarded(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    access = (await tokens())["access_token"]
    response = await client.patch(
        "/api/v1/products/SKU%2F1/stock?limit=5&q=caf%C3%A9&q=tea",
        content=b'{"delta": 3}',
        headers={
            "Authorization": f"Bearer {access}",
            "Content-Type": "application/json",
            "Idempotency-Key": "key-1",
            "X-Custom": "kept",
        },
    )
    assert response.status_code == 200
    echo = response.json()
    assert echo["method"] == "PATCH"
    assert echo["raw_path"] == "/api/v1/products/SKU%2F1/stock"  # not re-encoded or decoded
    assert echo["query"] == "limit=5&q=caf%C3%A9&q=tea"
    assert echo["body"] == '{"delta": 3}'
    headers = _headers(echo)
    # The original bearer token goes along: services verify it again.
    assert headers["authorization"] == [f"Bearer {access}"]
    assert headers["idempotency-key"] == ["key-1"]
    assert headers["x-custom"] == ["kept"]
    assert headers["content-length"] == ["12"]
    assert headers["x-forwarded-for"] == ["127.0.0.1"]
    assert response.headers["x-upstream"] == "echo"


async def test_anonymous_requests_pass_to_public_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/products")
    assert response.status_code == 200
    assert "authorization" not in _headers(response.json())


async def test_the_exact_prefix_and_its_subpaths_are_routed_but_not_lookalikes(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/v1/orders")).status_code == 200
    assert (await client.get("/api/v1/orders/123")).status_code == 200
    lookalike = await client.get("/api/v1/ordersx")
    assert lookalike.status_code == 404
    assert lookalike.headers["content-type"] == "application/problem+json"


async def test_hop_by_hop_headers_are_not_forwarded_either_way(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/api/v1/products",
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Upgrade": "h2c",
            "Proxy-Authorization": "Basic eDp5",
            "X-Secret-Hop": "drop me",
        },
    )
    forwarded = _headers(response.json())
    for name in ("keep-alive", "te", "upgrade", "proxy-authorization", "x-secret-hop"):
        assert name not in forwarded, name
    assert forwarded.get("connection", ["keep-alive"]) == ["keep-alive"]  # the gateway's own
    assert "keep-alive" not in response.headers


async def test_the_request_id_is_forwarded_and_echoed(client: httpx.AsyncClient) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    response = await client.get("/api/v1/products", headers={"X-Request-ID": request_id})
    assert _headers(response.json())["x-request-id"] == [request_id]
    # The upstream's own x-request-id is not doubled onto the answer.
    assert response.headers.get_list("x-request-id") == [request_id]


async def test_a_malformed_request_id_is_replaced_before_forwarding(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/products", headers={"X-Request-ID": "bad id\x01"})
    forwarded = _headers(response.json())["x-request-id"]
    assert forwarded == [response.headers["x-request-id"]]
    assert forwarded != ["bad id\x01"]


async def test_upstream_statuses_and_bodies_are_relayed(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/products/missing?status=404")
    assert response.status_code == 404
    assert response.json()["path"] == "/api/v1/products/missing"


async def test_large_responses_are_streamed_through_whole(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/products/big")
    assert response.status_code == 200
    assert len(response.content) == 3 * 1024 * 1024


async def test_an_invalid_token_is_401_at_the_gateway(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/orders", headers={"Authorization": "Bearer not.a.token"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_expired_token_is_401_at_the_gateway(
    client: httpx.AsyncClient, tokens: Tokens
) -> None:
    access = (await tokens())["access_token"]
    header = jwt.get_unverified_header(access)
    claims = jwt.get_unverified_claims(access)
    claims["exp"] = int(time.time()) - 3600
    # Re-signed with a foreign key: the gateway must refuse it whatever the claims say.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    foreign = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    forged = jwt.encode(claims, foreign, "RS256", headers={"kid": header["kid"]})
    response = await client.get("/api/v1/orders", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_an_upstream_that_is_down_is_503_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/payments/abc")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 503
    assert problem["request_id"] == response.headers["x-request-id"]
    assert "127.0.0.1" not in response.text  # nothing internal reaches the client


async def test_a_slow_upstream_is_504_in_bounded_time(gateway_client: Any) -> None:
    async with gateway_client(upstream_read_timeout_seconds=0.3) as client:
        started = time.perf_counter()
        response = await client.get("/api/v1/products/slow?seconds=3")
        elapsed = time.perf_counter() - started
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert elapsed < 2


async def test_a_request_body_over_the_limit_is_413(gateway_client: Any) -> None:
    async with gateway_client(max_body_bytes=1024) as client:
        response = await client.post("/api/v1/orders", content=b"x" * 2048)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


async def test_large_answers_are_gzipped_when_the_client_accepts(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/api/v1/products?pad=" + "a" * 4000, headers={"Accept-Encoding": "gzip"}
    )
    assert response.headers["content-encoding"] == "gzip"
    assert response.json()["query"].startswith("pad=")  # httpx decoded it
    assert "accept-encoding" in response.headers["vary"].lower()
    plain = await client.get("/api/v1/products", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


async def test_a_chunked_request_body_over_the_limit_is_413(gateway_client: Any) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(4):
            yield b"x" * 512

    async with gateway_client(max_body_bytes=1024) as client:
        response = await client.post("/api/v1/orders", content=chunks())
        within = await client.post("/api/v1/orders", content=b"y" * 1024)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert within.status_code == 200
    assert within.json()["body"] == "y" * 1024


async def test_small_answers_are_not_gzipped(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/products", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert int(response.headers["content-length"]) < 1024


async def test_a_streamed_answer_is_gzipped_as_it_streams(client: httpx.AsyncClient) -> None:
    async with client.stream(
        "GET", "/api/v1/products/big", headers={"Accept-Encoding": "gzip"}
    ) as response:
        body = await response.aread()
        sent_bytes = response.num_bytes_downloaded
    assert response.headers["content-encoding"] == "gzip"
    assert "content-length" not in response.headers
    assert body == b"x" * 3 * 1024 * 1024  # the upstream's 48 chunks, whole
    assert sent_bytes < 30 * 1024


async def test_an_answer_the_upstream_encoded_is_relayed_as_it_is(
    client: httpx.AsyncClient, encoded_text: bytes
) -> None:
    response = await client.get("/api/v1/products/encoded", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"  # once, not "gzip, gzip"
    assert response.content == encoded_text


async def test_an_event_stream_is_never_gzipped(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/products/events", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.text.count("data: event") == 100


async def test_gzip_refused_with_q_0_is_not_used(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/products?pad=" + "c" * 4000, headers={"Accept-Encoding": "gzip;q=0, identity"}
    )
    assert "content-encoding" not in response.headers
    assert response.json()["query"] == "pad=" + "c" * 4000


async def test_large_answers_are_sent_as_they_are_to_a_client_without_gzip(
    client: httpx.AsyncClient,
) -> None:
    for accept in ["identity", "br, deflate"]:
        response = await client.get(
            "/api/v1/products?pad=" + "b" * 4000, headers={"Accept-Encoding": accept}
        )
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
        assert response.json()["query"] == "pad=" + "b" * 4000


async def test_the_health_and_metrics_of_the_gateway_are_not_proxied(
    client: httpx.AsyncClient, internal: Callable[[httpx.AsyncClient], httpx.AsyncClient]
) -> None:
    probes = internal(client)
    ready = await probes.get("/health/ready")
    assert ready.status_code == 200
    # Failing open (the default), a Redis outage lifts the rate limits but refuses nothing.
    assert ready.json()["checks"] == {"database": "ok"}
    metrics = await probes.get("/metrics")
    assert 'route="/api/v1/products/{path}"' in metrics.text


async def test_readiness_and_metrics_are_not_served_on_the_public_port(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/health/ready", "/metrics"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
    assert (await client.get("/health/live")).status_code == 200


async def test_the_upstream_pool_is_on_the_metrics(
    client: httpx.AsyncClient, internal: Callable[[httpx.AsyncClient], httpx.AsyncClient]
) -> None:
    assert (await client.get("/api/v1/products/SKU-1")).status_code == 200
    text = (await internal(client).get("/metrics")).text
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("gateway_upstream_")
    }
    assert samples['gateway_upstream_connections{state="open"}'] >= 1
    assert samples['gateway_upstream_connections{state="idle"}'] >= 1  # kept alive
    assert samples["gateway_upstream_waiting_requests"] == 0
    assert samples["gateway_upstream_connects_total"] >= 1
    assert "gateway_upstream_stale_connections_total" in samples


async def test_an_unexpected_error_on_the_proxy_path_is_a_500_problem_with_the_request_id(
    make_settings: Callable[..., GatewaySettings],
) -> None:
    # Proxied requests skip FastAPI's own outer middleware (gateway.proxy.front): the
    # platform's request context still answers a crash with a problem, never a bare 500.
    app = create_app(make_settings())
    async with app_client(app) as client:
        upstreams = app.state.runtime.upstreams

        async def crash(*_: object) -> None:
            raise RuntimeError("a bug in the proxy")

        upstreams.forward = crash
        response = await client.get("/api/v1/products", headers={"X-Request-ID": "req-crash-1"})
        own_route = await client.get("/health/live")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-crash-1"
    assert "a bug in the proxy" not in response.text
    assert own_route.status_code == 200
