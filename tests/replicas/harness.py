"""Two of every process behind HAProxy, for real: ``make replicas``'s layout on free ports.

A ``ReplicaPlatform`` is a ``Platform`` (``tests.harness.platform``) whose processes are the
replicas of ``infra.replicas.topology`` (``gateway-1``, ``orders-worker-2``, ...) plus HAProxy
(``lb``), with its own database and broker namespace. Whatever takes a platform (the
storefront fixtures, the books) takes this one; ``gateway`` is the load balancer.

The supervisor of ``make replicas`` is not used here: a test kills a replica and starts it
again itself, so it knows when the replica is back (its restart loop has its own test).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from infra.replicas.topology import Layout, Process, haproxy_config
from shared.testing.ports import free_port
from tests.harness.platform import (
    PROCESS_SETTINGS,
    READY_SECONDS,
    ROOT,
    WORKER_STARTED,
    Platform,
)
from tests.harness.processes import ManagedProcess, child_environment

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
LB = "lb"
# More than one platform's start on a machine whose two cores run other suites too.
REPLICA_READY_SECONDS = 2 * READY_SECONDS
# Low enough that a test reaches it, high enough that the suites' own logins never do (the
# sixty buyers' race logs sixty in a few seconds, all from 127.0.0.1).
LOGIN_LIMIT = 120
LB_SETTINGS = {"GATEWAY_RATE_LIMIT_LOGIN_PER_ADDRESS": f"{LOGIN_LIMIT}/minute"}


def haproxy_available() -> bool:
    return Path(HAPROXY).is_file()


class CommandProcess(ManagedProcess):
    """A process that is not ``python -m``: HAProxy in the foreground."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log: Path) -> None:
        super().__init__(name, argv[0], env=env, log=log, cwd=ROOT)
        self.argv = argv

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._close_log()
        self._log_file = self.log.open("ab")
        self._popen = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=self._log_file, stderr=subprocess.STDOUT
        )


@dataclass
class ReplicaPlatform(Platform):
    layout: Layout = field(default_factory=lambda: Layout.on_free_ports(free_port))
    replicas: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        common = {
            **PROCESS_SETTINGS,
            **LB_SETTINGS,
            "COMMERCE_DB_NAME": self.database,
            "COMMERCE_BROKER_NAMESPACE": self.namespace,
            "COMMERCE_ENVIRONMENT": "test",
        }
        for process in self.layout.processes():
            self.replicas[process.name] = process
            self.processes[process.name] = ManagedProcess(
                process.name,
                process.module,
                env=child_environment({**common, **process.env}),
                log=self.log_dir / f"{process.name}.log",
                cwd=ROOT,
            )
        config = self.log_dir / "haproxy.cfg"
        config.write_text(haproxy_config(self.layout))
        self.processes[LB] = CommandProcess(
            LB,
            [HAPROXY, "-db", "-f", str(config)],
            env=child_environment({}),
            log=self.log_dir / "lb.log",
        )

    @property
    def env(self) -> dict[str, str]:
        return self.processes["gateway-1"].env

    @property
    def gateway(self) -> str:
        return self.layout.gateway_url

    def url(self, name: str) -> str:
        """A replica's base URL (``orders-2``); a kind (``orders``, ``gateway``) is the
        load balancer's frontend for it, so tests written for one platform run here too."""
        if name == "gateway":
            return self.gateway
        if name in self.layout.service_ports:
            return f"http://127.0.0.1:{self.layout.service_ports[name]}"
        return f"http://127.0.0.1:{self.replicas[name].port}"

    def probe_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.replicas[name].probe_port}"

    def names(self, kind: str) -> list[str]:
        return [process.name for process in self.layout.replicas_of(kind)]

    def start(self) -> None:
        self.processes[LB].start()
        for process in self.layout.processes():  # workers first, gateways last
            self.start_process(process.name)
        self.wait_in_rotation(list(self.replicas))

    def start_process(self, name: str) -> None:
        process = self.processes[name]
        if name == LB:
            process.start()
            return
        mark = process.log_size()
        process.start()
        if self.replicas[name].kind.endswith("-worker"):
            process.wait_for_log(WORKER_STARTED, seconds=REPLICA_READY_SECONDS, since=mark)
        self.wait_ready(name, REPLICA_READY_SECONDS)

    def restart_replica(self, name: str) -> None:
        """Start a stopped (or killed) replica and wait until it is ready and, for an app,
        back in the load balancer's rotation."""
        self.start_process(name)
        if not self.replicas[name].kind.endswith("-worker"):
            self.wait_in_rotation([name])

    def stop(self) -> dict[str, int | None]:
        codes = {}
        for process in reversed(self.layout.processes()):  # gateways first, workers last
            codes[process.name] = self.processes[process.name].stop()
        codes[LB] = self.processes[LB].stop()
        return codes

    # The load balancer's view (HAProxy's statistics as CSV).

    def lb_stats(self) -> list[dict[str, str]]:
        reply = httpx.get(f"{self.layout.stats_url};csv", timeout=5)
        reply.raise_for_status()
        return list(csv.DictReader(io.StringIO(reply.text.lstrip("# "))))

    def lb_states(self) -> dict[str, str]:
        """Every server's state (UP, DOWN, ...) by replica name."""
        return {
            row["svname"]: row["status"]
            for row in self.lb_stats()
            if row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_in_rotation(self, names: list[str], seconds: float = 30.0) -> None:
        """Wait until HAProxy's checks put every app among ``names`` UP (workers have no
        server in the load balancer)."""
        apps = [name for name in names if not self.replicas[name].kind.endswith("-worker")]
        deadline = time.monotonic() + seconds
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.lb_states()
            if all(states.get(name) == "UP" for name in apps):
                return
            time.sleep(0.2)
        raise AssertionError(f"not in the load balancer's rotation: {json.dumps(states)}")

    def metrics(self, name: str) -> str:
        """A replica's Prometheus exposition (a gateway's from its internal port)."""
        reply = httpx.get(f"{self.probe_url(name)}/metrics", timeout=10)
        reply.raise_for_status()
        return reply.text
