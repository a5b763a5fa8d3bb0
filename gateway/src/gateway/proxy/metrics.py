"""The upstream pools' state on ``/metrics``, read when Prometheus scrapes (no cost per
request): connections open, idle and being opened, requests waiting for a connection, and
counts of connections opened and of stale ones met.

One collector for the process, summing every started pool (a process runs one gateway; the
tests run two side by side, and a registry refuses the same series twice).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.proxy.upstream import UpstreamClient

_CLIENTS: weakref.WeakSet[UpstreamClient] = weakref.WeakSet()


class UpstreamPoolCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        every = [stats for client in list(_CLIENTS) if (stats := client.stats()) is not None]
        if not every:
            return
        connections = GaugeMetricFamily(
            "gateway_upstream_connections",
            "Connections to the upstreams, by state (open counts the idle ones too).",
            labels=["state"],
        )
        connections.add_metric(["open"], sum(s.open for s in every))
        connections.add_metric(["idle"], sum(s.idle for s in every))
        connections.add_metric(["connecting"], sum(s.connecting for s in every))
        yield connections
        yield GaugeMetricFamily(
            "gateway_upstream_waiting_requests",
            "Requests waiting for a free upstream connection (the pool is at its size).",
            value=sum(s.waiting for s in every),
        )
        yield CounterMetricFamily(
            "gateway_upstream_connects",
            "Connections opened to the upstreams.",
            value=sum(s.connects for s in every),
        )
        yield CounterMetricFamily(
            "gateway_upstream_stale_connections",
            "Reused connections found closed before any byte of their answer.",
            value=sum(s.stale for s in every),
        )


REGISTRY.register(UpstreamPoolCollector())


def watch_pool(upstreams: UpstreamClient) -> None:
    """Count this client's pool on ``/metrics`` from now on (until it is collected)."""
    _CLIENTS.add(upstreams)


def unwatch_pool(upstreams: UpstreamClient) -> None:
    _CLIENTS.discard(upstreams)
