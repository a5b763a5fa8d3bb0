"""The platform under test: the end-to-end harness's processes, with benchmark settings.

The harness (``tests.harness``) already starts every app and worker as a real process on
its own database and broker namespace; the benchmark reuses it and only changes settings:
bigger pools (still about 50 connections in all, the shared server allows 100), no access
log, long-lived tokens, and a rate limit the load stays under while the limiter still runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness import database
from tests.harness.platform import ROOT, Platform
from tests.harness.topology import delete_namespace

# Pools per process (app and worker of a service share their prefix). Connections at most:
# gateway 2+1, inventory 2 x (5+1), orders 2 x (5+1), payments 2 x (4+1), three LISTEN
# connections of the relays: 3 + 12 + 12 + 10 + 3 = 40, plus the benchmark's own reader.
BENCH_SETTINGS = {
    "COMMERCE_DB_MAX_OVERFLOW": "0",
    "GATEWAY_DB_POOL_SIZE": "2",
    "INVENTORY_DB_POOL_SIZE": "5",
    "ORDERS_DB_POOL_SIZE": "5",
    "PAYMENTS_DB_POOL_SIZE": "5",
    # The services' defaults: a consumer runs one transaction at a time, so its prefetch is
    # the most events one batch can take, not connections; payments' requests wait on the
    # provider (50 ms here, the harness's) holding no connection, 32 at a time.
    "COMMERCE_BROKER_PREFETCH": "100",
    "PAYMENTS_BROKER_PREFETCH": "32",
    # INFO stays: the harness waits for "worker started"; the per-request line goes.
    "COMMERCE_ACCESS_LOG": "false",
    "GATEWAY_ACCESS_TOKEN_TTL_SECONDS": "7200",
    # The limiter still counts every request in Redis, with the shape of the default (a
    # per-second and a per-minute limit); the limits are above the offered load.
    "GATEWAY_RATE_LIMIT_API": "100000/second;3000000/minute",
    # A benchmark's backlog may be minutes deep: the sweeper must not cancel queued orders.
    "ORDERS_PENDING_TIMEOUT_SECONDS": "1800",
    "ORDERS_AWAITING_PAYMENT_TIMEOUT_SECONDS": "1800",
    "ORDERS_SWEEPER_INTERVAL_SECONDS": "30",
}


@dataclass
class BenchPlatform(Platform):
    """The harness's platform, with ``BENCH_SETTINGS`` over its own."""

    overrides: dict[str, str] | None = None

    def _settings(self) -> dict[str, str]:
        return {**super()._settings(), **BENCH_SETTINGS, **(self.overrides or {})}

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items() if p.pid is not None}


@contextmanager
def running_platform(overrides: dict[str, str] | None = None) -> Iterator[BenchPlatform]:
    """A fresh database and namespace, the platform started on them; all removed after."""
    run = uuid.uuid4().hex[:8]
    name, namespace = f"commerce_bench_{run}", f"bench-{run}"
    log_dir = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    init_sql = (ROOT / "infra" / "postgres" / "init.sql").read_text()
    database.prepare(name, init_sql)
    platform = BenchPlatform(
        database=name, namespace=namespace, log_dir=log_dir, overrides=overrides
    )
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
        database.run_in_thread(delete_namespace(namespace))
        if os.environ.get("BENCH_KEEP_DATABASE"):  # to look into a run: its data and logs
            print(f"kept: database {name}, logs in {log_dir}")
        else:
            database.drop(name)
            shutil.rmtree(log_dir, ignore_errors=True)
