"""Two of every process behind HAProxy: the ports, the processes and HAProxy's config.

One layout serves ``make replicas`` (fixed ports, below) and the replica tests (free ports):

- HAProxy listens on the public port (8000) for the gateways, and on one internal port per
  service (8001-8003, the addresses the gateway's default ``GATEWAY_ROUTES`` name) for that
  service's replicas. The gateways therefore reach the services through the load balancer:
  a route is one origin per path prefix (``gateway.proxy.routes``), and HAProxy's health
  checks and retries then cover gateway → service exactly as they cover client → gateway.
- replica ``n`` (1, 2) of the gateway listens on 80n0 (its probes on 81n0), of inventory,
  orders and payments on 80n1-80n3; its workers' probes are on 81n1-81n3.
- HAProxy's statistics (per server: state, requests, retries, redispatches) are on 8404.

HAProxy keeps the clients' connections alive but opens one connection per request to a
replica (``option http-server-close``): no idle connection to a replica exists for it to
close under a request HAProxy has just sent (docs/replicas.md, "a cut without an answer").

Readiness: every server is checked with ``GET /health/ready`` (a gateway on its internal
port) every second; one failure takes it out, two successes put it back. A replica that is
draining has closed its listening socket, so its check fails at once and a connection
HAProxy still sends it is refused and redispatched to the other replica. A request that
fails after it was sent (the replica died mid-request) is retried on the other replica only
when repeating it is safe: GET, HEAD, or a request carrying an ``Idempotency-Key``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

SERVICES = ("inventory", "orders", "payments")
REPLICAS = 2
LB_PUBLIC_PORT = 8000
STATS_PORT = 8404

# What every route prefix of the gateway forwards to (DEFAULT_ROUTES in gateway.config).
ROUTE_PREFIXES = {
    "/api/v1/products": "inventory",
    "/api/v1/inventory": "inventory",
    "/api/v1/media": "inventory",
    "/api/v1/orders": "orders",
    "/api/v1/payments": "payments",
}


@dataclass(frozen=True)
class Process:
    """One replica: ``python -m <module>`` with the port settings of its own."""

    name: str  # e.g. "orders-2"
    kind: str  # "gateway", "orders", "orders-worker", ...
    module: str
    env: dict[str, str]
    port: int  # where it serves (a worker: its probe port)
    probe_port: int  # where it answers /health/ready

    def command(self, python: str = "python") -> str:
        """The Procfile command: the settings, then the module."""
        settings = " ".join(f"{name}={shlex.quote(value)}" for name, value in self.env.items())
        return f"env {settings} {python} -m {self.module}"


@dataclass(frozen=True)
class Layout:
    public_port: int = LB_PUBLIC_PORT
    service_ports: dict[str, int] = field(
        default_factory=lambda: {service: 8001 + i for i, service in enumerate(SERVICES)}
    )
    stats_port: int = STATS_PORT
    replicas: int = REPLICAS
    # Port of (kind, replica); the default follows 80n0-80n3 / 81n0-81n3.
    ports: dict[tuple[str, int], int] = field(default_factory=dict)

    @classmethod
    def on_free_ports(cls, free_port: Callable[[], int], replicas: int = REPLICAS) -> Layout:
        """A layout on free ports (tests: several runs at once never collide)."""
        kinds = ("gateway", "gateway-internal", *SERVICES, *(f"{s}-worker" for s in SERVICES))
        return cls(
            public_port=free_port(),
            service_ports={service: free_port() for service in SERVICES},
            stats_port=free_port(),
            replicas=replicas,
            ports={(kind, n): free_port() for kind in kinds for n in range(1, replicas + 1)},
        )

    def port(self, kind: str, n: int) -> int:
        if (kind, n) in self.ports:
            return self.ports[kind, n]
        if kind in ("gateway", "gateway-internal"):
            return 8000 + 100 * (kind == "gateway-internal") + 10 * n
        base = 8100 if kind.endswith("-worker") else 8000
        return base + 10 * n + 1 + SERVICES.index(kind.removesuffix("-worker"))

    def routes(self) -> dict[str, str]:
        """GATEWAY_ROUTES: every prefix to its service's port on the load balancer."""
        return {
            prefix: f"http://127.0.0.1:{self.service_ports[service]}"
            for prefix, service in ROUTE_PREFIXES.items()
        }

    def processes(self) -> list[Process]:
        """Every replica: workers first (they declare the queues), the gateways last."""
        found: list[Process] = []
        numbers = range(1, self.replicas + 1)
        for service in SERVICES:
            kind = f"{service}-worker"
            for n in numbers:
                port = self.port(kind, n)
                env = {f"{service.upper()}_WORKER_PORT": str(port)}
                found.append(Process(f"{kind}-{n}", kind, f"{service}.worker", env, port, port))
        for service in SERVICES:
            for n in numbers:
                port = self.port(service, n)
                env = {f"{service.upper()}_PORT": str(port)}
                found.append(Process(f"{service}-{n}", service, service, env, port, port))
        for n in numbers:
            port, internal = self.port("gateway", n), self.port("gateway-internal", n)
            env = {
                "GATEWAY_PORT": str(port),
                "GATEWAY_INTERNAL_PORT": str(internal),
                "GATEWAY_ROUTES": json.dumps(self.routes(), separators=(",", ":")),
            }
            found.append(Process(f"gateway-{n}", "gateway", "gateway", env, port, internal))
        return found

    def replicas_of(self, kind: str) -> list[Process]:
        return [process for process in self.processes() if process.kind == kind]

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/stats"


HAPROXY_HEAD = """\
# Generated by infra/replicas/topology.py: edit that file, not this one.
global
    log stdout format raw local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    # Only requests that went wrong are logged: the apps log every request themselves.
    option dontlog-normal
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # Clients keep their connection to HAProxy alive; HAProxy closes its idle one first only
    # after they have (the gateway's upstream pool 4 s, a client's such as httpx's 5 s).
    timeout http-keep-alive 10s
    # One connection per request to the replica, closed after the answer. Kept alive, an idle
    # server connection is closed by the replica (uvicorn's keep-alive timeout, a drain)
    # whenever it chooses, and if HAProxy has just sent a request on it, HAProxy hands the
    # failure to the client of a kept-alive connection by closing that connection without an
    # answer (for it to retry): a POST without an Idempotency-Key is then cut, unlogged.
    # A fresh connection fails only by refusal (redispatched) or by the replica dying.
    option http-server-close
    # A refused or failed connection is tried again, on the other replica (redispatch).
    retries 3
    option redispatch 1
    # After the request was sent: a replica killed mid-request, or answering 502/503/504
    # (draining, dependency away). Retried on the other replica only when repeating is safe.
    retry-on conn-failure empty-response response-timeout 502 503 504
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter 1s fastinter 500ms downinter 1s fall 1 rise 2 maxconn 512

listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
    stats refresh 5s
    http-request use-service prometheus-exporter if {{ path /metrics }}
"""


# Neither a read nor a request the contract makes safe to send again (docs/replicas.md).
UNSAFE_TO_REPEAT = "!METH_GET !METH_HEAD !{ req.hdr(idempotency-key) -m found }"


def haproxy_config(layout: Layout) -> str:
    """HAProxy's whole configuration for ``layout``."""
    parts = [HAPROXY_HEAD.format(stats_port=layout.stats_port)]
    backends = {"gateway": layout.public_port, **layout.service_ports}
    for kind, port in backends.items():
        lines = [
            "",
            f"frontend {kind}",
            f"    bind 127.0.0.1:{port}",
            f"    default_backend {kind}_replicas",
            "",
            f"backend {kind}_replicas",
            "    balance roundrobin",
            f"    http-request disable-l7-retry if {UNSAFE_TO_REPEAT}",
        ]
        if kind == "gateway":
            # The client's address for the gateway's per-address limits: uvicorn takes
            # X-Forwarded-For from 127.0.0.1 (its default forwarded_allow_ips).
            lines.append("    option forwardfor")
        for process in layout.replicas_of(kind):
            check = "check"
            if process.probe_port != process.port:
                check += f" port {process.probe_port}"
            lines.append(f"    server {process.name} 127.0.0.1:{process.port} {check}")
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)
