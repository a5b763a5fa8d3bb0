"""docker-compose.yml cannot run here (no Docker engine); these checks keep it honest."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config import GatewaySettings
from tests.services import ROOT, SERVICES, Service

INFRASTRUCTURE = ("postgres", "rabbitmq", "redis")
# Run as several containers (`docker compose up --scale inventory=3`, docs/media.md): a fixed
# host port would let only the first start, so they publish none.
SCALED = {"inventory"}
# Passed on to every process from the environment Compose runs in (docs/tracing.md).
TRACING = frozenset(
    {
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_TRACES_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_PROPAGATORS",
        "OTEL_SDK_DISABLED",
    }
)


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
    port = int(environment[f"{prefix}PORT"])
    assert port == service.default_port
    if service.name not in SCALED:  # test_a_scaled_service_publishes_no_fixed_host_port
        published = f"{port}:{port}" if service.name == "gateway" else f"127.0.0.1:{port}:{port}"
        assert definition["ports"] == [published]
    health_command = " ".join(definition["healthcheck"]["test"])
    assert f"http://127.0.0.1:{probe_port(service)}/health/ready" in health_command
    assert definition["command"] == ["python", "-m", service.name]
    assert environment[f"{prefix}DB_USER"] == service.name

    _assert_settings(environment, service)


def _assert_settings(environment: dict[str, str], service: Service) -> None:
    prefix = service.settings_class.env_prefix()
    fields = service.settings_class.model_fields
    for key in environment:
        if key in TRACING:  # the standard OpenTelemetry variables, no setting of ours
            continue
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
        "/api/v1/media": f"http://inventory:{ports['inventory']}",
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


def test_every_inventory_container_mounts_one_media_volume(compose: dict[str, Any]) -> None:
    for name in ("inventory", "inventory-worker"):
        definition = compose["services"][name]
        root = definition["environment"]["INVENTORY_MEDIA_ROOT"]
        assert f"media:{root}" in definition["volumes"], name
    assert "media" in compose["volumes"]


def _host_port(mapping: str | dict[str, Any]) -> str:
    """The host side's port of a ``ports`` entry: empty when Docker picks one."""
    if isinstance(mapping, dict):
        return str(mapping.get("published", ""))
    host, _, _container = str(mapping).rpartition(":")
    return host.rpartition(":")[2]


def test_a_scaled_service_publishes_no_fixed_host_port(compose: dict[str, Any]) -> None:
    for name in SCALED:
        fixed = [port for port in compose["services"][name].get("ports", []) if _host_port(port)]
        assert not fixed, f"{name} publishes {fixed}: a second replica could not bind it"
    assert _host_port("127.0.0.1:8001:8001") == _host_port("8001:8001") == "8001"
    assert _host_port("8001") == _host_port("127.0.0.1::8001") == ""


# -- deployment defaults (docs/deployment.md) -------------------------------------------------

PUBLIC = {"gateway", "storefront"}  # the only entry points published on every interface
TEXT = (ROOT / "docker-compose.yml").read_text()


def _apps(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: d for name, d in compose["services"].items() if "build" in d}


def _service_of(process: str) -> Service:
    return next(s for s in SERVICES if process in (s.name, f"{s.name}-worker"))


def test_only_public_entry_points_are_published_beyond_localhost(compose: dict[str, Any]) -> None:
    for name, definition in compose["services"].items():
        for port in definition.get("ports", []):
            if name not in PUBLIC:
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} publicly"
    assert compose["services"]["gateway"]["ports"] == ["8000:8000"]
    assert compose["services"]["storefront"]["ports"] == ["8080:80"]


def test_the_storefront_is_a_read_only_static_site_its_gateway_allows(
    compose: dict[str, Any],
) -> None:
    storefront = compose["services"]["storefront"]
    assert "build" not in storefront
    assert storefront["image"].startswith("nginx:")
    assert storefront["volumes"] == ["./storefront:/usr/share/nginx/html:ro"]
    origins = json.loads(
        compose["services"]["gateway"]["environment"]["GATEWAY_CORS_ALLOW_ORIGINS"]
    )
    assert "http://localhost:8080" in origins
    assert "*" not in origins


def test_no_password_has_a_default_or_a_placeholder() -> None:
    variables = re.findall(r"\$\{(\w+)([^}]*)\}", TEXT)
    secrets = [(name, rest) for name, rest in variables if "PASSWORD" in name]
    assert len({name for name, _ in secrets}) == 10
    for name, rest in secrets:
        assert rest.startswith(":?"), f"${{{name}}} must be required, not defaulted"
    for placeholder in ("change-me", "guest", "changeme"):
        assert placeholder not in TEXT


def test_the_environment_is_production_unless_set() -> None:
    """A Compose deployment that forgets COMMERCE_ENVIRONMENT fails closed, like the settings."""
    fallbacks = re.findall(r"\$\{COMMERCE_ENVIRONMENT([^}]*)\}", TEXT)
    assert fallbacks
    assert set(fallbacks) == {":-production"}


def test_env_example_names_every_variable_and_fills_no_password() -> None:
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(re.findall(r"\$\{(\w+)", TEXT)) == set(example)
    assert all(value == "" for name, value in example.items() if name.endswith("_PASSWORD"))
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text().split()


def test_stop_grace_period_outlasts_the_longest_drain(compose: dict[str, Any]) -> None:
    from shared.server import GRACEFUL_SHUTDOWN_SECONDS
    from shared.settings import BaseServiceSettings

    drain = BaseServiceSettings.model_fields["worker_shutdown_timeout_seconds"].default
    # A worker drains its consumers, then flushes its relay, each bounded by the timeout.
    longest = max(2 * drain, GRACEFUL_SHUTDOWN_SECONDS)
    for name, definition in _apps(compose).items():
        grace = re.fullmatch(r"(\d+)s", definition["stop_grace_period"])
        assert grace, f"{name}: stop_grace_period in seconds"
        assert int(grace.group(1)) > longest, name


def test_every_environment_key_of_every_process_is_a_setting(compose: dict[str, Any]) -> None:
    for name, definition in _apps(compose).items():
        if name == "migrate":  # migrates every service: a setting of any of them
            for key in definition["environment"]:
                if key in TRACING:
                    continue
                assert any(_is_setting(key, service) for service in SERVICES), key
            continue
        _assert_settings(definition["environment"], _service_of(name))


def _is_setting(key: str, service: Service) -> bool:
    prefix = service.settings_class.env_prefix()
    match = re.fullmatch(rf"(?:COMMERCE_|{prefix})(\w+)", key)
    return match is not None and match.group(1).lower() in service.settings_class.model_fields


def test_each_service_reaches_the_broker_as_its_own_user(compose: dict[str, Any]) -> None:
    for name, definition in _apps(compose).items():
        environment = definition["environment"]
        urls = {k: v for k, v in environment.items() if k.endswith("BROKER_URL")}
        if name in ("gateway", "migrate"):
            assert urls == {}, f"{name} needs no broker access"
            continue
        service = _service_of(name)
        prefix = service.settings_class.env_prefix()
        upper = service.name.upper()
        assert urls == {
            f"{prefix}BROKER_URL": f"amqp://{service.name}:${{RABBITMQ_{upper}_PASSWORD:?set "
            f"RABBITMQ_{upper}_PASSWORD in .env}}@rabbitmq:5672/"
        }


def test_the_broker_creates_the_service_users_from_the_definitions(
    compose: dict[str, Any],
) -> None:
    rabbitmq = compose["services"]["rabbitmq"]
    assert (
        "./infra/rabbitmq/definitions.json:/etc/rabbitmq/commerce-definitions.json:ro"
        in (rabbitmq["volumes"])
    )
    assert rabbitmq["command"] == ["/etc/rabbitmq/commerce-start.sh"]
    assert "commerce-users-ready" in " ".join(rabbitmq["healthcheck"]["test"])
    start = (ROOT / "infra/rabbitmq/start.sh").read_text()
    assert 'services="inventory orders payments"' in start
    assert "import_definitions /etc/rabbitmq/commerce-definitions.json" in start


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="make compose-check installs it")
def test_docker_compose_accepts_the_file_and_refuses_it_without_passwords(tmp_path: Path) -> None:
    from infra.docker.compose_env import filled

    env_file = tmp_path / "compose.env"
    env_file.write_text(filled((ROOT / ".env.example").read_text()))
    command = [
        "docker-compose",
        "--project-directory",
        str(ROOT),
        "-f",
        str(ROOT / "docker-compose.yml"),
    ]
    valid = subprocess.run([*command, "--env-file", str(env_file), "config", "-q"], check=False)
    assert valid.returncode == 0
    env_file.write_text("COMMERCE_ENVIRONMENT=development\n")
    refused = subprocess.run(
        [*command, "--env-file", str(env_file), "config", "-q"], capture_output=True, check=False
    )
    assert refused.returncode != 0
    assert b"set POSTGRES_PASSWORD in .env" in refused.stderr or b"PASSWORD" in refused.stderr


def test_make_up_writes_random_passwords_once_and_never_overwrites_an_env_file(
    tmp_path: Path,
) -> None:
    from infra.docker.compose_env import main

    example, target = ROOT / ".env.example", tmp_path / ".env"
    main(example, target)
    first = dict(line.split("=", 1) for line in target.read_text().splitlines() if "=" in line)
    passwords = {k: v for k, v in first.items() if k.endswith("_PASSWORD")}
    assert len(passwords) == 10
    assert all(len(value) >= 24 for value in passwords.values())
    assert len(set(passwords.values())) == 10
    assert first["COMMERCE_ENVIRONMENT"] == "development"
    assert target.stat().st_mode & 0o777 == 0o600

    target.write_text("COMMERCE_ENVIRONMENT=production\n")
    main(example, target)
    assert target.read_text() == "COMMERCE_ENVIRONMENT=production\n"


def test_the_gateways_internal_port_is_never_published(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    internal = int(gateway["environment"]["GATEWAY_INTERNAL_PORT"])
    assert internal == GatewaySettings.model_fields["internal_port"].default
    assert not any(str(internal) in str(mapping) for mapping in gateway["ports"])


def test_every_process_takes_the_tracing_variables_from_the_host_unset_by_default(
    compose: dict[str, Any],
) -> None:
    """Passed through without a value: unset on the host means unset in the container (an
    empty value, as ``${VAR:-}`` would give, is a value), so tracing is off by default."""
    for name, definition in _apps(compose).items():
        environment = definition["environment"]
        passed = {key: value for key, value in environment.items() if key.startswith("OTEL_")}
        # Never OTEL_SERVICE_NAME: one name for every process would merge them in the traces.
        assert passed == dict.fromkeys(TRACING), name


def test_the_documented_in_compose_endpoint_is_the_monitoring_profiles_jaeger(
    compose: dict[str, Any],
) -> None:
    jaeger = compose["services"]["jaeger"]
    assert jaeger["profiles"] == ["monitoring"]
    assert "127.0.0.1:4318:4318" in jaeger["ports"]
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    for document in ("docs/tracing.md", "docs/observability.md"):
        assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318" in (ROOT / document).read_text()


def test_an_empty_endpoint_keeps_tracing_off() -> None:
    from shared.tracing import tracing_wanted

    assert not tracing_wanted({name: "" for name in TRACING})
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"})
