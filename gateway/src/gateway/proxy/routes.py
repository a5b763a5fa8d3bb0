"""The route table: which upstream serves a path, by longest matching prefix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    upstream: str  # origin, no trailing slash

    @property
    def path(self) -> str:
        # What the metrics label a proxied request with: bounded, like a route template.
        return f"{self.prefix}/{{path}}"


class RouteTable:
    def __init__(self, routes: Mapping[str, str]) -> None:
        # Longest prefix first, so "/api/v1/orders-archive" can be routed apart from
        # "/api/v1/orders" if one day it must.
        self.routes = tuple(
            Route(prefix, upstream.rstrip("/"))
            for prefix, upstream in sorted(routes.items(), key=lambda item: -len(item[0]))
        )

    def match(self, path: str) -> Route | None:
        for route in self.routes:
            if path.startswith(route.prefix) and (
                len(path) == len(route.prefix) or path[len(route.prefix)] in "/?"
            ):
                return route
        return None

    @property
    def upstreams(self) -> dict[str, list[str]]:
        """Each upstream origin and the prefixes it serves."""
        served: dict[str, list[str]] = {}
        for route in self.routes:
            served.setdefault(route.upstream, []).append(route.prefix)
        return served
