"""The whole platform on loopback: gateway, three services and three workers, for real.

Each is a separate ``python -m`` process on a free port (a worker: its probe port) with the
platform's database and broker namespace, small connection pools (the shared Postgres allows
100 connections across every suite running), its log in a file of its own. ``start()`` waits
until every worker has declared its topology and every process answers ``/health/ready``;
``stop()`` sends SIGTERM and SIGKILLs what does not exit in time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.testing.ports import free_port
from tests.harness.processes import ManagedProcess, child_environment

ROOT = Path(__file__).resolve().parents[2]
APPS = ("inventory", "orders", "payments", "gateway")  # the gateway last: it merges the others
WORKERS = ("inventory-worker", "orders-worker", "payments-worker")
READY_SECONDS = 60.0
WORKER_STARTED = "worker started"

# Pools small enough for a shared server: 7 processes x (2 + 2) connections at most, plus
# each relay's LISTEN connection. Prefetch stays under the pool, so a burst of messages
# waits in the queue rather than for a connection.
PROCESS_SETTINGS = {
    "COMMERCE_DB_POOL_SIZE": "2",
    "COMMERCE_DB_MAX_OVERFLOW": "2",
    "COMMERCE_DB_POOL_TIMEOUT_SECONDS": "30",
    "COMMERCE_BROKER_PREFETCH": "4",
    "PAYMENTS_BROKER_PREFETCH": "2",
    "COMMERCE_BROKER_RECONNECT_INTERVAL_SECONDS": "0.5",
    "COMMERCE_OUTBOX_POLL_INTERVAL_SECONDS": "0.5",
    "COMMERCE_OUTBOX_MAX_BACKOFF_SECONDS": "2",
    "COMMERCE_WORKER_SHUTDOWN_TIMEOUT_SECONDS": "10",
    "COMMERCE_LOG_FORMAT": "json",
    # A provider call takes a little while, so a crash can land in the middle of a charge.
    "PAYMENTS_FAKE_PROVIDER_LATENCY_MS": "50",
    # The sweeper is the saga's last resort; it runs often so a fault ends in bounded time.
    "ORDERS_SWEEPER_INTERVAL_SECONDS": "2",
    "ORDERS_PENDING_TIMEOUT_SECONDS": "120",
    "ORDERS_AWAITING_PAYMENT_TIMEOUT_SECONDS": "30",
    # Rate limits stay on (Redis is real) but above what the suites send from one address.
    "GATEWAY_RATE_LIMIT_API": "2000/second",
    "GATEWAY_RATE_LIMIT_LOGIN_PER_ADDRESS": "2000/minute",
    "GATEWAY_RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT": "200/minute",
    "GATEWAY_RATE_LIMIT_AUTH_PER_ADDRESS": "2000/minute",
}


@dataclass
class Platform:
    database: str
    namespace: str
    log_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: {app: free_port() for app in APPS})
    probe_ports: dict[str, int] = field(
        default_factory=lambda: {worker: free_port() for worker in WORKERS}
    )
    # The browser suite serves the storefront here; the gateway lists it in its CORS
    # allow-list, so its port is known before the gateway starts.
    storefront_port: int = field(default_factory=free_port)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    # The gateway's probes and metrics are not on its public port.
    gateway_internal_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        env = child_environment(self._settings())
        for app in APPS:
            self.processes[app] = ManagedProcess(
                app, app, env=env, log=self.log_dir / f"{app}.log", cwd=ROOT
            )
        for worker in WORKERS:
            module = worker.replace("-", ".")
            self.processes[worker] = ManagedProcess(
                worker, module, env=env, log=self.log_dir / f"{worker}.log", cwd=ROOT
            )

    def _settings(self) -> dict[str, str]:
        routes = {
            "/api/v1/products": self.url("inventory"),
            "/api/v1/inventory": self.url("inventory"),
            "/api/v1/media": self.url("inventory"),
            "/api/v1/orders": self.url("orders"),
            "/api/v1/payments": self.url("payments"),
        }
        return {
            **PROCESS_SETTINGS,
            "COMMERCE_DB_NAME": self.database,
            "COMMERCE_BROKER_NAMESPACE": self.namespace,
            "COMMERCE_ENVIRONMENT": "test",
            "GATEWAY_ROUTES": json.dumps(routes),
            "GATEWAY_INTERNAL_PORT": str(self.gateway_internal_port),
            "GATEWAY_CORS_ALLOW_ORIGINS": json.dumps([self.storefront_origin]),
            "INVENTORY_MEDIA_ROOT": str(self.log_dir / "media"),
            **{f"{app.upper()}_PORT": str(port) for app, port in self.ports.items()},
            **{
                f"{worker.split('-')[0].upper()}_WORKER_PORT": str(port)
                for worker, port in self.probe_ports.items()
            },
        }

    @property
    def env(self) -> dict[str, str]:
        """The environment every process of the platform runs with (for commands)."""
        return self.processes["gateway"].env

    def url(self, name: str) -> str:
        """An app's base URL, or a worker's probe server (/health, /metrics)."""
        port = self.ports[name] if name in self.ports else self.probe_ports[name]
        return f"http://127.0.0.1:{port}"

    def probe_url(self, name: str) -> str:
        """Where a process answers /health/ready and /metrics (the gateway: its internal port)."""
        if name == "gateway":
            return f"http://127.0.0.1:{self.gateway_internal_port}"
        return self.url(name)

    @property
    def storefront_origin(self) -> str:
        return f"http://127.0.0.1:{self.storefront_port}"

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    def start(self) -> None:
        # Workers first: they declare the queues before any app writes an event.
        for name in (*WORKERS, *APPS):
            self.start_process(name)

    def start_process(self, name: str) -> None:
        process = self.processes[name]
        mark = process.log_size()
        process.start()
        if name in WORKERS:
            # Ready only once its queues are declared and consumed: an event published before
            # would be returned as unroutable and retried by the relay.
            process.wait_for_log(WORKER_STARTED, seconds=READY_SECONDS, since=mark)
        self.wait_ready(name)

    def restart(self, name: str) -> None:
        self.processes[name].stop()
        self.start_process(name)

    def wait_ready(self, app: str, seconds: float = READY_SECONDS) -> None:
        """Poll ``/health/ready`` (a worker's on its probe port) until 200; the bound only
        stops a hung start."""
        process = self.processes[app]
        deadline = time.monotonic() + seconds
        with httpx.Client(timeout=3) as client:
            while time.monotonic() < deadline and process.running:
                try:
                    if client.get(f"{self.probe_url(app)}/health/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise AssertionError(f"{app} never became ready:\n{process.log_tail()}")

    def stop(self) -> dict[str, int | None]:
        """Stop the apps (gateway first), then the workers; their exit codes."""
        order = ("gateway", "inventory", "orders", "payments", *WORKERS)
        return {name: self.processes[name].stop() for name in order}

    def logs(self, lines: int = 40) -> str:
        return "\n".join(
            f"===== {name} ({process.log}) =====\n{process.log_tail(lines)}"
            for name, process in self.processes.items()
        )
