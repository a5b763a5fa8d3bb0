"""Catalog reads: the same product pages direct, through the gateway, and through nginx."""

from __future__ import annotations

from bench.shop.runner import run_load
from bench.shop.stats import Figures, failures_note


def product_urls(origin: str, skus: list[str]) -> list[str]:
    return [f"{origin}/api/v1/products/{sku}" for sku in skus]


def read_catalog(
    scenario: str,
    origin: str,
    skus: list[str],
    *,
    token: str | None,
    connections: int,
    seconds: float,
) -> Figures:
    """Closed-loop GETs of the product pages at ``origin``: req/s and latency."""
    headers = [{"Authorization": f"Bearer {token}"}] if token else [{}]
    result = run_load(
        {
            "kind": "get",
            "urls": product_urls(origin, skus),
            "headers": headers,
            "connections": connections,
            "seconds": seconds,
        }
    )
    return Figures.of(
        scenario,
        result["completed"] / result["elapsed"],
        "req/s",
        result["latencies_ms"],
        errors=result["errors"],
        note=f"{connections} connections" + failures_note(result),
    )
