"""infra/k8s cannot be applied here (no cluster); these checks render it and keep it honest.

Every overlay is rendered with ``kubectl kustomize`` (Debian's ``kubernetes-client``: kubectl
1.20, kustomize v2.0.3; ``make k8s-check`` installs it) and every object is validated strictly
against the Kubernetes API schemas of ``KUBERNETES_VERSION`` (``kubernetes-validate``, which
ships them). The rest reads the rendered objects: environment against the settings classes
and docker-compose.yml, probes, drains, budgets, autoscalers, network policies, security.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import SecretStr

from shared.server import GRACEFUL_SHUTDOWN_SECONDS
from shared.settings import BaseServiceSettings
from tests.k8s import (
    APIS,
    K8S,
    OVERLAYS,
    PROCESS_LABEL,
    WORKERS,
    Object,
    environment_of,
    needs_kubectl,
    of_kind,
    rendered_overlay,
    selects,
)
from tests.services import ROOT, SERVICES, Service

KUBERNETES_VERSION = "1.34.0"
# What kustomize v2.0.3 renders (docs/kubernetes.md); a directory goes under ``bases`` there.
KUSTOMIZE_V2_FIELDS = {
    "resources",
    "bases",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "configMapGenerator",
    "commonLabels",
    "namespace",
}
# The static shop (docs/storefront.md): nginx, none of our Python processes or settings.
STOREFRONT = "storefront"
STOREFRONT_DOCKERFILE = ROOT / "infra" / "storefront.Dockerfile"
DATA_NAMESPACE = "commerce-data"
SCRAPER = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
INGRESS_CONTROLLER = ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
DNS_PORTS = {53}
DATA_PORTS = {5432, 5672, 6379}
# Variables the manifests set ahead of a setting merged from another branch (the gateway's
# internal port: docs/edge.md). Accepted only while the settings class lacks the field.
PENDING_SETTINGS = {"GATEWAY_INTERNAL_PORT": ("gateway", "internal_port")}
# Variables read by uvicorn itself (uvicorn.Config), not by a settings class, and who sets them.
SERVER_VARIABLES = {"FORWARDED_ALLOW_IPS": "gateway"}

# Compose gives every process the Redis URL; only these use Redis (rate limits, the catalog
# cache), and only they may reach it (the egress-redis policy).
REDIS_USERS = ("gateway", "inventory", "inventory-worker")


@pytest.fixture(params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> tuple[Object, ...]:
    return rendered_overlay(request.param)


def _workloads(objects: tuple[Object, ...]) -> Iterator[tuple[str, Object, Object]]:
    """(name, pod spec, container) of every Deployment and Job."""
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            spec = o["spec"]["template"]["spec"]
            for container in spec["containers"]:
                yield o["metadata"]["name"], spec, container


def _processes(objects: tuple[Object, ...]) -> Iterator[tuple[str, Object, Object]]:
    """The workloads running our Python processes: every one but the storefront's nginx."""
    return ((n, s, c) for n, s, c in _workloads(objects) if n != STOREFRONT)


def _service_of(workload: str) -> Service:
    name = workload.removesuffix("-worker").removesuffix("-migrate")
    return next(service for service in SERVICES if service.name == name)


def _is_setting(key: str, service: Service) -> bool:
    prefix = service.settings_class.env_prefix()
    match = re.fullmatch(rf"(?:COMMERCE_|{prefix})(\w+)", key)
    if match is None:
        return False
    if match.group(1).lower() in service.settings_class.model_fields:
        return True
    pending = PENDING_SETTINGS.get(key)
    return (
        pending is not None
        and pending[0] == service.name
        and pending[1] not in service.settings_class.model_fields
    )


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


# -- the kustomizations themselves ------------------------------------------------------------


def _kustomizations() -> list[Any]:
    return sorted(K8S.rglob("kustomization.yaml"))


def test_kustomizations_use_only_the_fields_kustomize_v2_renders() -> None:
    found = _kustomizations()
    assert {path.parent.name for path in found} >= {"base", *OVERLAYS}
    for path in found:
        fields = set(yaml.safe_load(path.read_text()))
        assert fields <= KUSTOMIZE_V2_FIELDS, f"{path}: {fields - KUSTOMIZE_V2_FIELDS}"


def test_no_secret_value_is_committed() -> None:
    for path in K8S.rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if not isinstance(document, dict):
                continue
            assert "secretGenerator" not in document, path
            assert document.get("kind") != "Secret", f"{path} commits a Secret"


# -- rendering and schemas --------------------------------------------------------------------


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_with_kubectl_kustomize(overlay: str) -> None:
    kinds = {o["kind"] for o in rendered_overlay(overlay)}
    assert kinds >= {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "Ingress",
        "Job",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PersistentVolumeClaim",
    }


def test_every_object_validates_strictly_against_the_kubernetes_api(
    objects: tuple[Object, ...],
) -> None:
    for o in objects:
        try:
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{o['kind']}/{o['metadata']['name']}"
            pytest.fail(f"{name}: {error.message} at {list(error.path)}")


def test_the_schema_validation_refuses_an_unknown_field(objects: tuple[Object, ...]) -> None:
    deployment = json.loads(json.dumps(next(iter(of_kind(objects, "Deployment").values()))))
    deployment["spec"]["template"]["spec"]["containers"][0]["terminationGrace"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_object_lands_in_the_overlays_namespace(objects: tuple[Object, ...]) -> None:
    (namespace,) = of_kind(objects, "Namespace")
    for o in objects:
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == namespace, o["metadata"]["name"]


# -- processes, settings and the Compose file ---------------------------------------------------


def test_one_deployment_per_process_and_one_migration_job_per_service(
    objects: tuple[Object, ...],
) -> None:
    assert set(of_kind(objects, "Deployment")) == {*APIS, *WORKERS, STOREFRONT}
    assert set(of_kind(objects, "Job")) == {f"{name}-migrate" for name in APIS}
    compose_apps = {
        name for name, d in _compose()["services"].items() if "build" in d and name != "migrate"
    }
    assert compose_apps == {*APIS, *WORKERS}


def test_every_variable_of_every_process_is_one_of_its_settings(
    objects: tuple[Object, ...],
) -> None:
    for name, _spec, container in _processes(objects):
        service = _service_of(name)
        for key in environment_of(objects, container):
            if SERVER_VARIABLES.get(key) == name:
                continue
            assert _is_setting(key, service), f"{name}: {key} names no setting of {service.name}"


def test_processes_run_what_compose_runs_with_the_same_settings(
    objects: tuple[Object, ...],
) -> None:
    compose = _compose()["services"]
    deployments = of_kind(objects, "Deployment")
    for name in (*APIS, *WORKERS):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == compose[name]["command"], name
        ours = environment_of(objects, container)
        theirs: dict[str, str | None] = compose[name]["environment"]
        # Compose's development key folder is what production replaces with real keys;
        # its allowed origin is the storefront on :8080, the cluster's is the Ingress host
        # (test_the_gateway_allows_the_origin_the_ingress_serves_the_storefront_on).
        for key, value in theirs.items():
            if key in (
                "COMMERCE_JWT_DEV_KEY_DIR",
                "COMMERCE_ENVIRONMENT",
                "GATEWAY_CORS_ALLOW_ORIGINS",
            ):
                continue
            if key == "COMMERCE_REDIS_URL" and name not in REDIS_USERS:
                continue
            # Passed through from the host when set there (OTEL_*, tracing): a cluster sets
            # its own (docs/kubernetes.md), the manifests ship none.
            if value is None:
                continue
            assert key in ours, f"{name}: {key} is in docker-compose.yml, not in the manifests"
            if "${" in str(value) or key == "COMMERCE_DB_HOST":
                assert "valueFrom" in ours[key], f"{name}: {key} is read from its cluster object"
            else:
                assert ours[key]["value"] == str(value), f"{name}: {key}"


def test_ports_are_the_settings_defaults(objects: tuple[Object, ...]) -> None:
    deployments = of_kind(objects, "Deployment")
    services = of_kind(objects, "Service")
    for service in SERVICES:
        prefix = service.settings_class.env_prefix()
        container = deployments[service.name]["spec"]["template"]["spec"]["containers"][0]
        environment = environment_of(objects, container)
        port = int(environment[f"{prefix}PORT"]["value"])
        assert port == service.default_port
        assert {"name": "http", "containerPort": port} in container["ports"]
        exposed = services[service.name]["spec"]["ports"]
        # The gateway's routes name http://<service>:<port>, as in Compose.
        expected = 80 if service.name == "gateway" else port
        assert exposed == [{"name": "http", "port": expected, "targetPort": "http"}]
        if service.name == "gateway":
            continue
        worker = deployments[f"{service.name}-worker"]["spec"]["template"]["spec"]
        worker_environment = environment_of(objects, worker["containers"][0])
        worker_port = service.settings_class.model_fields["worker_port"].default
        assert int(worker_environment[f"{prefix}WORKER_PORT"]["value"]) == worker_port
        assert worker["containers"][0]["ports"] == [{"name": "probe", "containerPort": worker_port}]


def test_gateway_routes_reach_the_services_as_in_compose(objects: tuple[Object, ...]) -> None:
    gateway = of_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"]
    routes = json.loads(
        environment_of(objects, gateway["containers"][0])["GATEWAY_ROUTES"]["value"]
    )
    compose_routes = json.loads(_compose()["services"]["gateway"]["environment"]["GATEWAY_ROUTES"])
    assert routes == compose_routes


def test_each_process_uses_its_own_role_and_broker_user_from_secrets(
    objects: tuple[Object, ...],
) -> None:
    for name, _spec, container in _processes(objects):
        service = _service_of(name)
        prefix = service.settings_class.env_prefix()
        environment = environment_of(objects, container)
        assert environment[f"{prefix}DB_USER"]["value"] == service.name, name
        password = environment[f"{prefix}DB_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert password == {"name": f"commerce-{service.name}", "key": "db-password"}, name
        brokers = {key for key in environment if key.endswith("BROKER_URL")}
        if service.name == "gateway":
            assert brokers == set(), f"{name} needs no broker access"
        else:
            assert brokers == {f"{prefix}BROKER_URL"}, name
            url = environment[f"{prefix}BROKER_URL"]["valueFrom"]["secretKeyRef"]
            assert url == {"name": f"commerce-{service.name}", "key": "broker-url"}, name


def test_every_secret_value_comes_from_a_secret_and_is_documented(
    objects: tuple[Object, ...],
) -> None:
    documented = (ROOT / "docs" / "kubernetes.md").read_text()
    for name, _spec, container in _processes(objects):
        fields = _service_of(name).settings_class.model_fields
        for key, entry in environment_of(objects, container).items():
            field = fields.get(key.split("_", 1)[1].lower())
            # The public keys are no secret to Pydantic, but they are the operator's to set.
            secret = (field is not None and field.annotation is SecretStr) or key.endswith("_KEYS")
            reference = entry.get("valueFrom", {}).get("secretKeyRef")
            if secret:
                assert reference, f"{name}: {key} must come from a Secret"
            if reference:
                assert f"`{reference['name']}`" in documented, reference["name"]
                assert f"`{reference['key']}`" in documented, reference["key"]


def test_apps_reach_postgres_through_the_pooler_and_listeners_directly(
    objects: tuple[Object, ...],
) -> None:
    for name, _spec, container in _processes(objects):
        host = environment_of(objects, container)["COMMERCE_DB_HOST"]["valueFrom"]
        key = host["configMapKeyRef"]["key"]
        # Relays LISTEN (workers), and migrations run DDL: neither through transaction pooling.
        direct = name.endswith(("-worker", "-migrate"))
        assert key == ("db-direct-host" if direct else "db-pooled-host"), name


# -- probes, drains, resources, security --------------------------------------------------------


def test_every_process_has_startup_liveness_and_readiness_probes_on_its_own_port(
    objects: tuple[Object, ...],
) -> None:
    for name, deployment in of_kind(objects, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        paths = {
            probe: (container[probe]["httpGet"]["path"], container[probe]["httpGet"]["port"])
            for probe in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        if name == STOREFRONT:
            # nginx has no health endpoints and no metrics: the page itself is the check.
            assert set(paths.values()) == {("/", "http")}, name
            assert "annotations" not in deployment["spec"]["template"]["metadata"], name
            continue
        expected_port = {"gateway": "internal"}.get(name, "probe" if name in WORKERS else "http")
        assert paths == {
            "startupProbe": ("/health/live", expected_port),
            "livenessProbe": ("/health/live", expected_port),
            "readinessProbe": ("/health/ready", expected_port),
        }, name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(ports[expected_port]), name
        assert annotations["prometheus.io/path"] == "/metrics"
        # A readiness check may take readiness_timeout_seconds: the probe waits longer.
        timeout = BaseServiceSettings.model_fields["readiness_timeout_seconds"].default
        assert container["readinessProbe"]["timeoutSeconds"] > timeout, name


def test_the_gateways_probes_and_metrics_use_its_internal_port(
    objects: tuple[Object, ...],
) -> None:
    from gateway.config import GatewaySettings

    gateway = of_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"]
    container = gateway["containers"][0]
    internal = int(environment_of(objects, container)["GATEWAY_INTERNAL_PORT"]["value"])
    assert {"name": "internal", "containerPort": internal} in container["ports"]
    field = GatewaySettings.model_fields.get("internal_port")
    if field is not None:
        assert internal == field.default
    # The public Service and the Ingress reach the public port only.
    service = of_kind(objects, "Service")["gateway"]
    assert [port["targetPort"] for port in service["spec"]["ports"]] == ["http"]


def test_termination_grace_outlasts_the_pre_stop_pause_and_the_drain(
    objects: tuple[Object, ...],
) -> None:
    drain = BaseServiceSettings.model_fields["worker_shutdown_timeout_seconds"].default
    for name, deployment in of_kind(objects, "Deployment").items():
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {})
        pause = int(pre_stop["command"][1]) if pre_stop else 0
        if name in WORKERS:
            # A worker stops its consumers, then flushes its relay, each bounded by the drain.
            longest = 2 * drain
        else:
            # An app keeps serving while its endpoint is withdrawn everywhere, then drains.
            assert pre_stop["command"][0] == "sleep", name
            assert pause >= 5, name
            longest = GRACEFUL_SHUTDOWN_SECONDS
        assert spec["terminationGracePeriodSeconds"] > pause + longest, name


def test_every_container_has_requests_and_limits(objects: tuple[Object, ...]) -> None:
    for name, _spec, container in _workloads(objects):
        resources = container["resources"]
        for resource in ("cpu", "memory"):
            assert resource in resources["requests"], name
            assert resource in resources["limits"], name
        # One Python thread per process (one nginx worker: infra/storefront.Dockerfile): it
        # cannot use more than a core.
        assert resources["limits"]["cpu"] == "1", name


def test_every_pod_runs_restricted(objects: tuple[Object, ...]) -> None:
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    storefront_dockerfile = STOREFRONT_DOCKERFILE.read_text()
    for name, spec, container in _workloads(objects):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        if name == STOREFRONT:
            # The user the image's last USER line names (nginx-unprivileged's).
            users = re.findall(r"^USER (\S+)$", storefront_dockerfile, re.MULTILINE)
            assert users[-1] == str(pod["runAsUser"]), name
        else:
            assert f"--uid {pod['runAsUser']}" in dockerfile, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        # Service links would set ORDERS_PORT=tcp://... in every pod: a setting's name.
        assert spec["enableServiceLinks"] is False, name
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        # Whatever else is mounted is an emptyDir, a ConfigMap read-only, or the media volume.
        for path, volume in mounts.items():
            kind = next(key for key in volumes[volume] if key != "name")
            assert kind in ("emptyDir", "configMap", "persistentVolumeClaim"), (name, path)
            if kind == "configMap":
                mount = next(m for m in container["volumeMounts"] if m["mountPath"] == path)
                assert mount.get("readOnly") is True, (name, path)


def test_each_deployment_has_a_budget_a_spread_and_the_apis_an_autoscaler(
    objects: tuple[Object, ...],
) -> None:
    budgets = of_kind(objects, "PodDisruptionBudget")
    autoscalers = of_kind(objects, "HorizontalPodAutoscaler")
    assert set(autoscalers) == set(APIS)
    for name, deployment in of_kind(objects, "Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        # The pods carry their process label besides (tests/test_k8s_monitoring.py), outside
        # the selector: a Deployment's selector cannot change once it is created.
        labels = dict(deployment["spec"]["template"]["metadata"]["labels"])
        labels.pop(PROCESS_LABEL, None)
        assert labels == selector, name
        assert budgets[name]["spec"]["selector"]["matchLabels"] == selector, name
        assert budgets[name]["spec"]["maxUnavailable"] == 1, name
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
        }
        assert all(c["labelSelector"]["matchLabels"] == selector for c in spread), name
        strategy = deployment["spec"]["strategy"]["rollingUpdate"]
        assert strategy["maxUnavailable"] == 0, name
        if name in APIS:
            # The autoscaler owns the replica count: a fixed one would fight it on each apply.
            assert "replicas" not in deployment["spec"], name
            autoscaler = autoscalers[name]
            assert autoscaler["apiVersion"] == "autoscaling/v2"
            assert autoscaler["spec"]["scaleTargetRef"]["name"] == name
            assert autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]


# -- network policies --------------------------------------------------------------------------


def _peer(peer: Object, namespace: str) -> tuple[str, Object]:
    """(namespace, pod selector) of a policy peer; a bare podSelector is the policy's own."""
    if "namespaceSelector" in peer:
        names = peer["namespaceSelector"]["matchLabels"]
        return names["kubernetes.io/metadata.name"], peer.get("podSelector", {})
    return namespace, peer["podSelector"]


def _pods(objects: tuple[Object, ...]) -> dict[str, dict[str, str]]:
    return {
        name: o["spec"]["template"]["metadata"]["labels"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
        for name in [o["metadata"]["name"]]
    }


def test_pods_deny_everything_not_allowed(objects: tuple[Object, ...]) -> None:
    deny = of_kind(objects, "NetworkPolicy")["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_pods_reach_only_dns_the_data_stores_and_the_gateway_the_services(
    objects: tuple[Object, ...],
) -> None:
    (namespace,) = of_kind(objects, "Namespace")
    policies = of_kind(objects, "NetworkPolicy").values()
    pods = _pods(objects)
    for name, labels in pods.items():
        for policy in policies:
            if not selects(policy["spec"]["podSelector"], labels):
                continue
            for rule in policy["spec"].get("egress", []):
                ports = {port["port"] for port in rule["ports"]}
                for peer in rule["to"]:
                    peer_namespace, selector = _peer(peer, policy["metadata"]["namespace"])
                    if peer_namespace == "kube-system":
                        assert ports == DNS_PORTS, (name, policy["metadata"]["name"])
                    elif peer_namespace == DATA_NAMESPACE:
                        assert ports <= DATA_PORTS, (name, policy["metadata"]["name"])
                    else:
                        # Only the gateway talks to pods of ours: the services' apps.
                        assert peer_namespace == namespace
                        assert labels["app.kubernetes.io/name"] == "gateway", name
                        targets = [n for n, pod in pods.items() if selects(selector, pod)]
                        assert set(targets) == {"inventory", "orders", "payments"}
    for name, labels in pods.items():
        reaches_redis = any(
            selects(policy["spec"]["podSelector"], labels)
            and any(
                port["port"] == 6379
                for rule in policy["spec"].get("egress", [])
                for port in rule["ports"]
            )
            for policy in policies
        )
        assert reaches_redis == (name in REDIS_USERS), name
    # The storefront calls nothing (the browser calls the API): DNS only.
    for policy in policies:
        if selects(policy["spec"]["podSelector"], pods[STOREFRONT]):
            for rule in policy["spec"].get("egress", []):
                assert {port["port"] for port in rule["ports"]} == DNS_PORTS
    # The gateway has no broker user, so no way to the broker either.
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            if {port["port"] for port in rule["ports"]} == {5672}:
                assert not selects(policy["spec"]["podSelector"], pods["gateway"])


def test_only_the_gateway_and_the_scraper_reach_our_pods(objects: tuple[Object, ...]) -> None:
    pods = _pods(objects)
    policies = of_kind(objects, "NetworkPolicy").values()
    reached: dict[str, set[tuple[str, str]]] = {name: set() for name in pods}
    for policy in policies:
        for name, labels in pods.items():
            if not selects(policy["spec"]["podSelector"], labels):
                continue
            for rule in policy["spec"].get("ingress", []):
                for peer in rule["from"]:
                    peer_namespace, selector = _peer(peer, policy["metadata"]["namespace"])
                    if peer_namespace == policy["metadata"]["namespace"]:
                        sources = [n for n, pod in pods.items() if selects(selector, pod)]
                        assert sources == ["gateway"], (name, policy["metadata"]["name"])
                        reached[name].add(("ours", "gateway"))
                    else:
                        # A peer in another namespace is selected by its own labels only.
                        assert (peer_namespace, selector["matchLabels"]) in (
                            SCRAPER,
                            INGRESS_CONTROLLER,
                        ), policy["metadata"]["name"]
                        reached[name].add((peer_namespace, next(iter(selector["matchLabels"]))))
    scraper = (SCRAPER[0], "app.kubernetes.io/name")
    controller = (INGRESS_CONTROLLER[0], "app.kubernetes.io/name")
    assert reached["gateway"] == {scraper, controller}
    assert reached[STOREFRONT] == {controller}
    for name in ("inventory", "orders", "payments"):
        assert reached[name] == {("ours", "gateway"), scraper}, name
    for name in WORKERS:
        assert reached[name] == {scraper}, name
    for name in (n for n in pods if n.endswith("-migrate")):
        assert reached[name] == set(), name


def test_one_ingress_on_one_host_the_api_to_the_gateway_the_rest_to_the_storefront(
    objects: tuple[Object, ...],
) -> None:
    ingresses = of_kind(objects, "Ingress")
    assert list(ingresses) == ["gateway"]
    # One host: the page and the API are one origin, so SameSite=Strict sends the cookie.
    (rule,) = ingresses["gateway"]["spec"]["rules"]
    assert ingresses["gateway"]["spec"]["tls"][0]["hosts"] == [rule["host"]]
    paths = {path["path"]: path for path in rule["http"]["paths"]}
    assert {path["pathType"] for path in paths.values()} == {"Prefix"}
    backends = {name: path["backend"]["service"] for name, path in paths.items()}
    gateway = {"name": "gateway", "port": {"name": "http"}}
    assert backends == {
        "/api": gateway,
        "/.well-known": gateway,
        "/": {"name": STOREFRONT, "port": {"name": "http"}},
    }
    # Every prefix the gateway forwards is under a path routed to it.
    gateway_spec = of_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"]
    environment = environment_of(objects, gateway_spec["containers"][0])
    for prefix in json.loads(environment["GATEWAY_ROUTES"]["value"]):
        assert prefix.startswith("/api/"), prefix
    services = of_kind(objects, "Service")
    assert [port["targetPort"] for port in services[STOREFRONT]["spec"]["ports"]] == ["http"]


def test_the_gateway_allows_the_origin_the_ingress_serves_the_storefront_on(
    objects: tuple[Object, ...],
) -> None:
    (rule,) = of_kind(objects, "Ingress")["gateway"]["spec"]["rules"]
    gateway = of_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"]
    origins = environment_of(objects, gateway["containers"][0])["GATEWAY_CORS_ALLOW_ORIGINS"]
    # The browser sends Origin on every POST; the cookie-borne refresh requires it listed.
    assert json.loads(origins["value"]) == [f"https://{rule['host']}"]


def test_the_gateway_takes_the_client_address_from_the_ingress_controllers_network(
    objects: tuple[Object, ...],
) -> None:
    """Every request reaches the gateway through the ingress controller: unless uvicorn
    believes the controller's X-Forwarded-For, every client has the controller's address and
    one client's failed logins lock every other out (per-address limits)."""
    gateway = of_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"]
    environment = environment_of(objects, gateway["containers"][0])
    assert "FORWARDED_ALLOW_IPS" in environment, "uvicorn would trust only 127.0.0.1"
    value = environment["FORWARDED_ALLOW_IPS"]["value"]
    assert value.strip() != "*", "any peer could then choose its own address"
    for entry in value.split(","):
        # An address or a network, as uvicorn parses it; not every address there is.
        network = ipaddress.ip_network(entry.strip())
        assert network.prefixlen > 0, value


def test_the_storefront_serves_composes_files_with_the_api_on_its_own_origin(
    objects: tuple[Object, ...],
) -> None:
    compose = _compose()["services"][STOREFRONT]
    (volume,) = compose["volumes"]
    source, root, _mode = volume.split(":")
    assert source == "./storefront"
    # The image holds the same files at the same place (root-owned: nginx cannot change them).
    dockerfile = STOREFRONT_DOCKERFILE.read_text()
    assert f"COPY --chown=root:root storefront/ {root}/" in dockerfile
    assert re.search(r"^FROM nginxinc/nginx-unprivileged:\S+-alpine$", dockerfile, re.MULTILINE)
    deployment = of_kind(objects, "Deployment")[STOREFRONT]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080}]
    # It takes no settings: nothing of ours is in its environment.
    assert "env" not in container
    assert "envFrom" not in container
    assert "replicas" in deployment["spec"]
    # config.js is replaced by the ConfigMap's: same keys, the API under the page's origin.
    (mount,) = (m for m in container["volumeMounts"] if m["mountPath"] == f"{root}/config.js")
    volume_source = next(v for v in spec["volumes"] if v["name"] == mount["name"])["configMap"]
    config_js = of_kind(objects, "ConfigMap")[volume_source["name"]]["data"][mount["subPath"]]
    assert 'apiBase: "/api/v1"' in config_js
    keys = re.compile(r"^\s+(\w+):", re.MULTILINE)
    original = (ROOT / "storefront" / "config.js").read_text()
    assert set(keys.findall(config_js)) == set(keys.findall(original))


# -- migrations and the roll-out -------------------------------------------------------------


def test_each_migration_job_upgrades_its_own_schema(objects: tuple[Object, ...]) -> None:
    for name, job in of_kind(objects, "Job").items():
        service = _service_of(name)
        spec = job["spec"]["template"]["spec"]
        assert spec["restartPolicy"] == "Never"
        (container,) = spec["containers"]
        command = container["command"]
        assert command[:2] == ["alembic", "-c"], name
        assert command[3:] == ["upgrade", "head"], name
        ini = command[2].removeprefix("/app/")
        assert (ROOT / ini).resolve() == service.alembic_ini.resolve(), name
        assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "migration"


def _first_apply_selects(labels: dict[str, str]) -> bool:
    """deploy.sh's first apply: whatever is neither api, worker, gateway nor storefront."""
    components = ("api", "worker", "gateway", "storefront")
    return labels.get("app.kubernetes.io/component") not in components


def test_deploy_migrates_before_any_pod_of_the_new_version_starts(
    objects: tuple[Object, ...],
) -> None:
    script = (K8S / "deploy.sh").read_text()
    first = (
        'kubectl apply -k "$overlay" -l '
        '"app.kubernetes.io/component notin (api,worker,gateway,storefront)"'
    )
    wait = "wait --for=condition=complete job"
    everything = 'kubectl apply -k "$overlay"\n'
    assert script.index(first) < script.index(wait) < script.index(everything)
    for o in objects:
        labels = o["metadata"].get("labels", {})
        # The media volume's claim too: it provisions while the migrations run.
        if o["kind"] in ("Job", "ConfigMap", "Namespace", "NetworkPolicy", "PersistentVolumeClaim"):
            assert _first_apply_selects(labels), o["metadata"]["name"]
        else:
            assert not _first_apply_selects(labels), o["metadata"]["name"]


def test_every_process_runs_the_one_image_and_the_storefront_its_own(
    objects: tuple[Object, ...],
) -> None:
    images = {container["image"] for _name, _spec, container in _processes(objects)}
    assert len(images) == 1
    (image,) = images
    ((_name, _spec, storefront),) = (w for w in _workloads(objects) if w[0] == STOREFRONT)
    # Released together: the same tag, never a moving one.
    tag = image.rsplit(":", 1)[1]
    assert storefront["image"].rsplit(":", 1)[1] == tag
    assert storefront["image"] != image
    assert tag != "latest"


# -- product media ----------------------------------------------------------------------------


def test_inventorys_app_and_worker_share_one_read_write_many_media_volume(
    objects: tuple[Object, ...],
) -> None:
    compose = _compose()["services"]
    claims = of_kind(objects, "PersistentVolumeClaim")
    used = set()
    for name in ("inventory", "inventory-worker"):
        spec = of_kind(objects, "Deployment")[name]["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        root = environment_of(objects, container)["INVENTORY_MEDIA_ROOT"]["value"]
        # Mounted where Compose mounts its media volume, writable, on a claim.
        assert f"media:{root}" in compose[name]["volumes"], name
        (mount,) = (m for m in container["volumeMounts"] if m["mountPath"] == root)
        assert not mount.get("readOnly", False), name
        (volume,) = (v for v in spec["volumes"] if v["name"] == mount["name"])
        used.add(volume["persistentVolumeClaim"]["claimName"])
        # Files written on the volume stay the process's group's, whoever provisioned it.
        assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]
    # One claim for both, on every node at once: replicas on other nodes see every image.
    (claim,) = used
    assert claims[claim]["spec"]["accessModes"] == ["ReadWriteMany"]
    # Nothing else mounts it: the other processes have no business with product images.
    for name, spec, _container in _workloads(objects):
        claimed = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claimed == (used if name in ("inventory", "inventory-worker") else set()), name


def test_production_names_a_storage_class_for_the_media_volume() -> None:
    (claim,) = of_kind(rendered_overlay("production"), "PersistentVolumeClaim").values()
    assert claim["spec"]["storageClassName"], "the cluster's ReadWriteMany class"


# -- sizing (docs/scaling.md) -------------------------------------------------------------------


def _settings_in_section(document: Path, heading: str) -> dict[str, str]:
    """Every `NAME=value` a section of a document names, by NAME."""
    text = document.read_text()
    _, found, rest = text.partition(f"\n## {heading}\n")
    assert found, f"{document.name} has no section {heading!r}"
    section = rest.split("\n## ", 1)[0]
    return dict(re.findall(r"`([A-Z][A-Z0-9_]*)=([^`\s]+)`", section))


def test_production_runs_the_workers_with_the_settings_its_scaling_section_names() -> None:
    """The overlay is sized for 1,000 orders/s: its workers carry that section's settings, a
    COMMERCE_ one on every worker, a service's own on that service's worker."""
    named = _settings_in_section(ROOT / "docs" / "scaling.md", "1,000 confirmed orders/s")
    assert {"PAYMENTS_BROKER_PREFETCH", "COMMERCE_DB_POOL_SIZE"} <= set(named)
    objects = rendered_overlay("production")
    deployments = of_kind(objects, "Deployment")
    for key, value in named.items():
        workers = [
            name
            for name in WORKERS
            if key.startswith("COMMERCE_") or key.startswith(f"{_service_of(name).name.upper()}_")
        ]
        assert workers, f"docs/scaling.md names {key}, which no worker reads"
        for name in workers:
            (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
            environment = environment_of(objects, container)
            assert key in environment, f"{name}: {key} is not set (docs/scaling.md: {value})"
            assert environment[key]["value"] == value, f"{name}: {key}"


# -- expand, then contract (docs/kubernetes.md) ------------------------------------------------

MIGRATIONS = sorted(
    path
    for service in SERVICES
    for path in (service.directory).rglob("migrations/versions/*.py")
    if "site-packages" not in path.parts
)
CONTRACT_MARKER = "Contract step:"
# Migrations written before this rule that break it, by revision, with what that costs a
# roll-out across them (docs/kubernetes.md, "Expand, then contract"). Add none.
KNOWN_EXCEPTIONS: set[str] = set()  # none: a new migration must not be added here


def _breaking_operations(source: str) -> list[str]:
    """What an ``upgrade()`` does that the running version may not survive."""
    tree = ast.parse(source)
    upgrade = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "upgrade"
    )
    found = []
    for node in ast.walk(upgrade):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "op"
        ):
            continue
        operation = node.func.attr
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        if operation in ("drop_column", "drop_table", "rename_table"):
            found.append(operation)
        elif operation == "alter_column" and (
            "new_column_name" in keywords
            or "type_" in keywords
            or _is_false(keywords.get("nullable"))
        ):
            found.append("alter_column")
        elif operation == "add_column":
            column = next((arg for arg in node.args if isinstance(arg, ast.Call)), None)
            column_keywords = {k.arg: k.value for k in column.keywords} if column else {}
            if _is_false(column_keywords.get("nullable")) and "server_default" not in (
                column_keywords
            ):
                found.append("add_column NOT NULL without a default")
    return found


def _is_false(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def test_there_are_migrations_to_check() -> None:
    assert len(MIGRATIONS) >= 4 * 2


@pytest.mark.parametrize("migration", MIGRATIONS, ids=lambda path: path.name)
def test_migrations_only_expand_unless_marked_as_a_contract_step(migration: Path) -> None:
    source = migration.read_text()
    if any(f'revision: str = "{revision}"' in source for revision in KNOWN_EXCEPTIONS):
        pytest.skip("written before the expand/contract rule: docs/kubernetes.md")
    breaking = _breaking_operations(source)
    docstring = ast.get_docstring(ast.parse(source)) or ""
    assert not breaking or CONTRACT_MARKER in docstring, (
        f"{migration.name} does {breaking}, which the version still running during a roll-out "
        f"(or after a rollback) may use: expand now, contract a release later, and say "
        f"'{CONTRACT_MARKER}' in its docstring when it is that later release"
    )


def test_the_expand_check_finds_what_breaks_the_running_version() -> None:
    breaking = """
def upgrade() -> None:
    op.drop_column("orders", "note", schema="orders")
    op.add_column("orders", sa.Column("x", sa.Integer(), nullable=False), schema="orders")
    op.alter_column("orders", "a", new_column_name="b", schema="orders")
"""
    expanding = """
def upgrade() -> None:
    op.add_column("orders", sa.Column("x", sa.Integer(), nullable=True), schema="orders")
    op.add_column(
        "orders", sa.Column("y", sa.Integer(), nullable=False, server_default="0"), schema="orders"
    )
    op.create_index("ix", "orders", ["x"], schema="orders")
"""
    assert _breaking_operations(breaking) == [
        "drop_column",
        "add_column NOT NULL without a default",
        "alter_column",
    ]
    assert _breaking_operations(expanding) == []
