"""Prometheus metrics: HTTP request count and latency by route template, and ``/metrics``."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import Scope

# Labelled by route template ("/orders/{order_id}"), never by raw path, so that the number of
# series stays bounded whatever URLs clients send.
UNMATCHED_ROUTE = "<unmatched>"

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request to the end of the response, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# The labelled children of both metrics, by (method, route, status): looking them up by
# labels costs more than counting (a lock, a tuple of strings, a dict) on every request.
# Bounded as the series themselves are.
_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


def record_request(scope: Scope, *, status: int, seconds: float) -> None:
    """Count an answered request and its duration, by method and route template.

    Called by ``RequestContextMiddleware`` once the request is over (its route is known
    then): one middleware layer, and one send wrapper, fewer on every request than a
    metrics middleware of its own (send wrappers show in the gateway's profile).
    """
    route = _route_template(scope)
    method = scope["method"]
    key = (method, route, status)
    children = _CHILDREN.get(key)
    if children is None:
        children = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_LATENCY.labels(method, route),
        )
        _CHILDREN[key] = children
    count, latency = children
    count.inc()
    latency.observe(seconds)


def metrics_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
