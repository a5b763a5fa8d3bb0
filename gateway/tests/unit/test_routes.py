"""The route table matches whole path segments, longest prefix first."""

from __future__ import annotations

import pytest

from gateway.proxy.routes import RouteTable

TABLE = RouteTable(
    {
        "/api/v1/orders": "http://orders:8002/",
        "/api/v1/orders/archive": "http://archive:8009",
        "/api/v1/products": "http://inventory:8001",
    }
)


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/api/v1/orders", "http://orders:8002"),
        ("/api/v1/orders/", "http://orders:8002"),
        ("/api/v1/orders/123/cancel", "http://orders:8002"),
        ("/api/v1/orders/archive/7", "http://archive:8009"),
        ("/api/v1/products", "http://inventory:8001"),
        ("/api/v1/ordersx", None),
        ("/api/v1", None),
        ("/health/ready", None),
    ],
)
def test_a_path_goes_to_the_longest_matching_prefix(path: str, upstream: str | None) -> None:
    route = TABLE.match(path)
    assert (route.upstream if route else None) == upstream


def test_upstreams_list_the_prefixes_each_serves() -> None:
    assert TABLE.upstreams["http://orders:8002"] == ["/api/v1/orders"]
