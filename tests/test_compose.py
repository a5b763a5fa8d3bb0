"""docker-compose.yml cannot run here (no Docker engine); these checks keep it honest."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewaySettings
from tests.services import ROOT, SERVICES, Service

INFRASTRUCTURE = ("postgres", "rabbitmq", "redis")


def probe_port(service: Service) -> int:
    """Where a process answers /health/ready and /metrics: the gateway's internal port."""
    fields = service.settings_class.model_fields
    port: int = fields["internal_port" if "internal_port" in fields else "port"].default
    return port


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, definition in compose["services"].items():
        if name == "migrate":
            continue
        check = definition.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert not check.get("disable"), f"{name} disables its health check"


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_app_waits_for_healthy_infrastructure_and_migrations(
    compose: dict[str, Any], service: Service
) -> None:
    depends_on = compose["services"][service.name]["depends_on"]
    for infrastructure in INFRASTRUCTURE:
        assert depends_on[infrastructure]["condition"] == "service_healthy"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_ports_and_environment_match_the_settings(
    compose: dict[str, Any], service: Service
) -> None:
    definition = compose["services"][service.name]
    environment: dict[str, str] = definition["environment"]
    prefix = service.settings_class.env_prefix()
    fields = service.settings_class.model_fields

    port = int(environment[f"{prefix}PORT"])
    assert port == service.default_port
    assert definition["ports"] == [f"{port}:{port}"]
    health_command = " ".join(definition["healthcheck"]["test"])
    assert f"http://127.0.0.1:{probe_port(service)}/health/ready" in health_command
    assert definition["command"] == ["python", "-m", service.name]
    assert environment[f"{prefix}DB_USER"] == service.name

    for key in environment:
        match = re.fullmatch(rf"(?:COMMERCE_|{prefix})(\w+)", key)
        assert match, f"{key} is neither a COMMERCE_ nor a {prefix} setting"
        assert match.group(1).lower() in fields, f"{key} names no setting of {service.name}"


def test_one_dockerfile_builds_every_process(compose: dict[str, Any]) -> None:
    dockerfiles = {
        definition["build"]["dockerfile"]
        for definition in compose["services"].values()
        if "build" in definition
    }
    assert dockerfiles == {"infra/Dockerfile"}
    assert (ROOT / "infra" / "Dockerfile").is_file()


def test_postgres_is_initialised_with_the_schemas_and_roles(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["postgres"]["volumes"]
    assert any(
        volume.startswith("./infra/postgres/init.sql:/docker-entrypoint-initdb.d/")
        for volume in volumes
    )
    assert Path(ROOT, "infra/postgres/init.sql").is_file()


WORKERS = [service for service in SERVICES if service.name != "gateway"]


@pytest.mark.parametrize("service", WORKERS, ids=lambda service: service.name)
def test_each_service_has_a_worker_with_its_probe_as_health_check(
    compose: dict[str, Any], service: Service
) -> None:
    definition = compose["services"][f"{service.name}-worker"]
    prefix = service.settings_class.env_prefix()
    port = int(definition["environment"][f"{prefix}WORKER_PORT"])
    assert port == service.settings_class.model_fields["worker_port"].default
    assert definition["command"] == ["python", "-m", f"{service.name}.worker"]
    assert f"http://127.0.0.1:{port}/health/ready" in " ".join(definition["healthcheck"]["test"])
    for infrastructure in INFRASTRUCTURE:
        assert definition["depends_on"][infrastructure]["condition"] == "service_healthy"


def test_prometheus_scrapes_every_process(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    targets = set(config["scrape_configs"][0]["static_configs"][0]["targets"])
    expected = {f"{service.name}:{probe_port(service)}" for service in SERVICES} | {
        f"{service.name}-worker:{service.settings_class.model_fields['worker_port'].default}"
        for service in WORKERS
    }
    assert targets == expected


def test_gateway_routes_reach_the_services_by_their_compose_names(compose: dict[str, Any]) -> None:
    routes = json.loads(compose["services"]["gateway"]["environment"]["GATEWAY_ROUTES"])
    ports = {service.name: service.default_port for service in SERVICES}
    assert routes == {
        "/api/v1/products": f"http://inventory:{ports['inventory']}",
        "/api/v1/inventory": f"http://inventory:{ports['inventory']}",
        "/api/v1/orders": f"http://orders:{ports['orders']}",
        "/api/v1/payments": f"http://payments:{ports['payments']}",
    }
    assert set(routes) == set(GatewaySettings().routes)


def test_every_app_shares_one_development_key_volume(compose: dict[str, Any]) -> None:
    for name, definition in compose["services"].items():
        if "build" not in definition:
            continue
        assert "jwt-keys:/app/var/keys" in definition["volumes"], name
        assert definition["environment"]["COMMERCE_JWT_DEV_KEY_DIR"] == "/app/var/keys", name


def test_the_gateways_internal_port_is_never_published(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    internal = int(gateway["environment"]["GATEWAY_INTERNAL_PORT"])
    assert internal == GatewaySettings.model_fields["internal_port"].default
    assert not any(str(internal) in str(mapping) for mapping in gateway["ports"])
