"""The generated configuration of ``make replicas``: HAProxy accepts it, and it routes and
checks what the layout says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway.config import DEFAULT_ROUTES
from infra.replicas.generate import write
from infra.replicas.supervisor import read_procfile
from infra.replicas.topology import Layout, haproxy_config
from tests.replicas.harness import HAPROXY, haproxy_available


def test_the_gateways_default_routes_are_the_load_balancers_service_ports() -> None:
    assert Layout().routes() == DEFAULT_ROUTES


def test_two_replicas_of_every_process_on_ports_of_their_own() -> None:
    layout = Layout()
    processes = layout.processes()
    kinds = {process.kind for process in processes}
    assert len(kinds) == 7
    assert all(len(layout.replicas_of(kind)) == 2 for kind in kinds)
    ports = [p.port for p in processes] + [p.probe_port for p in processes if p.kind == "gateway"]
    reserved = [layout.public_port, layout.stats_port, *layout.service_ports.values()]
    assert len(set(ports + reserved)) == len(ports) + len(reserved)
    assert layout.port("gateway", 2) == 8020
    assert layout.port("gateway-internal", 2) == 8120
    assert layout.port("payments", 1) == 8013
    assert layout.port("orders-worker", 2) == 8122


def test_the_gateways_are_checked_on_their_internal_port_and_services_on_their_own() -> None:
    config = haproxy_config(Layout())
    assert "option httpchk GET /health/ready" in config
    assert "server gateway-1 127.0.0.1:8010 check port 8110" in config
    assert "server orders-2 127.0.0.1:8022 check\n" in config
    # L7 retries (after the request was sent) only for what is safe to repeat.
    assert config.count("http-request disable-l7-retry if !METH_GET !METH_HEAD") == 4
    # No idle connection to a replica, which the replica could close under a request.
    assert "option http-server-close" in config


def test_the_procfile_runs_haproxy_and_every_replica(tmp_path: Path) -> None:
    write(tmp_path, Layout(), "python")
    commands = read_procfile((tmp_path / "Procfile").read_text())
    assert commands["lb"].startswith("haproxy -db -f ")
    assert len(commands) == 15
    assert commands["orders-2"] == "env ORDERS_PORT=8022 python -m orders"


@pytest.mark.skipif(not haproxy_available(), reason="HAProxy is not installed")
def test_haproxy_accepts_the_generated_configuration(tmp_path: Path) -> None:
    write(tmp_path, Layout(), "python")
    result = subprocess.run(
        [HAPROXY, "-c", "-f", str(tmp_path / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
