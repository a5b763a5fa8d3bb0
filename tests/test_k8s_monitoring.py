"""On Kubernetes the rules and dashboards select what they select under Compose.

The Prometheus Operator's objects (infra/k8s/monitoring, applied per overlay from its
``monitoring/``) are rendered like the overlays. Each PodMonitor is then applied to every pod
of the overlay as the operator's generated scrape configuration would (its selector, its
port, its default labels, then its relabelings, simulated here), and each process must come
out as one target with the ``process`` and ``job`` labels infra/prometheus/prometheus.yml
gives it, on the port its settings make it serve /metrics on. The PrometheusRules must be
infra/prometheus/rules, group for group.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from infra.dev import prometheus_rules
from tests.k8s import (
    APIS,
    K8S,
    OVERLAYS,
    PROCESS_LABEL,
    WORKERS,
    Object,
    environment_of,
    of_kind,
    rendered,
    rendered_overlay,
    selects,
)
from tests.observability import DASHBOARDS, PROMETHEUS, RULES, dashboard_queries, rule_groups
from tests.services import SERVICES

MONITORING_GROUP = "monitoring.coreos.com"
SCRAPER = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
# Where a process serves /metrics: the setting that names the port.
METRICS_PORT_SETTINGS = {"gateway": "GATEWAY_INTERNAL_PORT"} | {
    f"{service.name}-worker": f"{service.settings_class.env_prefix()}WORKER_PORT"
    for service in SERVICES
    if service.name != "gateway"
}
# A label matcher of PromQL: name, operator, quoted value.
MATCHER = re.compile(r'\b(process|job)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"')

Labels = dict[str, str]


def _compose_prometheus() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    return loaded


def _prometheus_regex(regex: str) -> re.Pattern[str]:
    """Prometheus anchors a relabeling's regex at both ends."""
    return re.compile(f"^(?:{regex})$")


def _expand(template: str, match: re.Match[str]) -> str:
    """A replacement's $1, ${1} or ${name}, as Go expands it (an unmatched group is empty)."""
    return re.sub(
        r"\$\{?(\w+)\}?",
        lambda group: match.group(int(group[1]) if group[1].isdigit() else group[1]) or "",
        template,
    )


def _relabel(labels: Labels, rules: list[Object]) -> Labels | None:
    """Prometheus's replace, keep and drop (the operator's spelling); None when dropped."""
    labels = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace").lower()
        assert action in ("replace", "keep", "drop"), f"{action} is not simulated here"
        value = rule.get("separator", ";").join(
            labels.get(name, "") for name in rule.get("sourceLabels", [])
        )
        match = _prometheus_regex(rule.get("regex", "(.*)")).match(value)
        if (action == "keep" and match is None) or (action == "drop" and match is not None):
            return None
        if action == "replace" and match is not None:
            result = _expand(rule.get("replacement", "$1"), match)
            if result:
                labels[rule["targetLabel"]] = result
            else:
                labels.pop(rule["targetLabel"], None)
    return labels


def _meta(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _targets(monitor: Object, namespace: str, pod: str, template: Object) -> Iterator[Labels]:
    """The targets a PodMonitor makes of one pod: per container port its endpoint names,
    the operator's labels (namespace, container, pod, job, endpoint), then its relabelings."""
    spec = monitor["spec"]
    labels = template["metadata"].get("labels", {})
    own_namespace = monitor["metadata"]["namespace"]
    allowed = spec.get("namespaceSelector", {}).get("matchNames", [own_namespace])
    if namespace not in allowed or not selects(spec["selector"], labels):
        return
    pod_labels = {f"__meta_kubernetes_pod_label_{_meta(k)}": v for k, v in labels.items()}
    pod_labels |= {f"__meta_kubernetes_pod_labelpresent_{_meta(k)}": "true" for k in labels}
    for container in template["spec"]["containers"]:
        for port in container.get("ports", []):
            for endpoint in spec["podMetricsEndpoints"]:
                if endpoint["port"] != port.get("name"):
                    continue
                discovered = pod_labels | {
                    "__address__": f"10.0.0.1:{port['containerPort']}",
                    "__metrics_path__": endpoint.get("path", "/metrics"),
                    "__meta_kubernetes_namespace": namespace,
                    "__meta_kubernetes_pod_name": pod,
                    "__meta_kubernetes_pod_container_name": container["name"],
                    "__meta_kubernetes_pod_container_port_name": port["name"],
                    "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                    "namespace": namespace,
                    "container": container["name"],
                    "pod": pod,
                    "job": f"{own_namespace}/{monitor['metadata']['name']}",
                    "endpoint": endpoint["port"],
                    "__scrape_interval__": endpoint.get("interval", ""),
                }
                target = _relabel(discovered, endpoint.get("relabelings", []))
                if target is not None:
                    yield target


def _monitoring(overlay: str) -> tuple[Object, ...]:
    return rendered(K8S / "overlays" / overlay / "monitoring")


def _pods(objects: tuple[Object, ...]) -> dict[str, Object]:
    """Every pod template of the overlay, by its workload's name."""
    return {
        o["metadata"]["name"]: o["spec"]["template"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }


def _scrape_targets(overlay: str, pods: dict[str, Object]) -> dict[str, list[Labels]]:
    (namespace,) = of_kind(rendered_overlay(overlay), "Namespace")
    monitors = of_kind(_monitoring(overlay), "PodMonitor").values()
    return {
        name: [
            target
            for monitor in monitors
            for target in _targets(monitor, namespace, f"{name}-pod", template)
        ]
        for name, template in pods.items()
    }


def _compose_targets() -> dict[str, int]:
    """process -> port of every target prometheus.yml scrapes, its relabeling applied."""
    (job,) = _compose_prometheus()["scrape_configs"]
    (relabel,) = job["relabel_configs"]
    assert relabel["target_label"] == "process"
    targets = {}
    for address in (t for group in job["static_configs"] for t in group["targets"]):
        match = _prometheus_regex(relabel["regex"]).match(address)
        assert match is not None, address
        targets[_expand(relabel.get("replacement", "$1"), match)] = int(address.split(":")[1])
    return targets


def _selected(expressions: Iterator[str], label: str) -> set[str]:
    """Every value a selector of the label names (=, !=; a regular expression, its values)."""
    values: set[str] = set()
    for expression in expressions:
        for name, operator, value in MATCHER.findall(expression):
            if name == label:
                values.update(value.split("|") if "~" in operator else [value])
    return values


def _rule_expressions() -> Iterator[str]:
    for path in RULES:
        for group in rule_groups(path):
            for rule in group["rules"]:
                yield rule["expr"]


def _all_expressions() -> Iterator[str]:
    yield from _rule_expressions()
    yield from (expr for _where, expr in dashboard_queries())


def _metrics_port(name: str, container: Object, objects: tuple[Object, ...]) -> int:
    service = next(s for s in SERVICES if s.name == name.removesuffix("-worker"))
    setting = METRICS_PORT_SETTINGS.get(name, f"{service.settings_class.env_prefix()}PORT")
    return int(environment_of(objects, container)[setting]["value"])


# -- what the rules and dashboards select -------------------------------------------------------


def test_the_rules_and_dashboards_select_processes_composes_prometheus_labels() -> None:
    compose = _compose_targets()
    assert set(compose) == {*APIS, *WORKERS}
    assert RULES
    assert DASHBOARDS
    selected = _selected(_all_expressions(), "process")
    assert selected, "no rule or dashboard selects by process: this file checks nothing"
    assert selected <= set(compose), f"no process is labelled {selected - set(compose)}"
    (job,) = _compose_prometheus()["scrape_configs"]
    assert _selected(_all_expressions(), "job") == {job["job_name"]}


# -- the pods' process label --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_pod_carries_its_process_label(overlay: str) -> None:
    pods = _pods(rendered_overlay(overlay))
    for name in (*APIS, *WORKERS):
        labels = pods[name]["metadata"]["labels"]
        assert labels.get(PROCESS_LABEL) == name, f"{name}'s pods lack {PROCESS_LABEL}={name}"
    # The storefront and the migrations serve no metrics: nothing to label.
    for name in set(pods) - {*APIS, *WORKERS}:
        assert PROCESS_LABEL not in pods[name]["metadata"]["labels"], name


# -- the scrape configuration -------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_is_scraped_once_labelled_as_compose_on_its_metrics_port(
    overlay: str,
) -> None:
    objects = rendered_overlay(overlay)
    pods = _pods(objects)
    compose = _compose_targets()
    (job,) = _compose_prometheus()["scrape_configs"]
    interval = _compose_prometheus()["global"]["scrape_interval"]
    for name, targets in _scrape_targets(overlay, pods).items():
        if name not in compose:
            assert targets == [], f"{name} serves no metrics but is scraped"
            continue
        assert len(targets) == 1, f"{name}: {len(targets)} targets"
        (target,) = targets
        assert target.get("process") == name, (
            f"{name} is scraped as process={target.get('process')}"
        )
        assert target["job"] == job["job_name"], f"{name}: job={target['job']}"
        assert target["__metrics_path__"] == job["metrics_path"], name
        assert target["__scrape_interval__"] == interval, f"{name}: every {interval} as in Compose"
        (container,) = pods[name]["spec"]["containers"]
        port = int(target["__address__"].rsplit(":", 1)[1])
        serving = _metrics_port(name, container, objects)
        assert port == serving == compose[name], f"{name}: scraped on {port}, serves on {serving}"


def test_a_pod_that_loses_its_process_label_is_scraped_without_one() -> None:
    pods = _pods(rendered_overlay("production"))
    gateway = yaml.safe_load(yaml.safe_dump(pods["gateway"]))
    del gateway["metadata"]["labels"][PROCESS_LABEL]
    ((target,),) = _scrape_targets("production", {"gateway": gateway}).values()
    assert "process" not in target


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_scraper_may_reach_every_target(overlay: str) -> None:
    objects = rendered_overlay(overlay)
    pods = _pods(objects)
    policies = of_kind(objects, "NetworkPolicy").values()
    scraper_namespace, scraper_labels = SCRAPER
    for name, targets in _scrape_targets(overlay, pods).items():
        labels = pods[name]["metadata"]["labels"]
        for target in targets:
            port = int(target["__address__"].rsplit(":", 1)[1])
            allowed = any(
                {"kubernetes.io/metadata.name": scraper_namespace}
                == peer.get("namespaceSelector", {}).get("matchLabels")
                and selects(peer.get("podSelector", {}), scraper_labels)
                and port in {p["port"] for p in rule["ports"]}
                for policy in policies
                if selects(policy["spec"]["podSelector"], labels)
                for rule in policy["spec"].get("ingress", [])
                for peer in rule["from"]
            )
            assert allowed, f"no NetworkPolicy lets Prometheus reach {name} on {port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_monitoring_objects_apply_apart_in_the_overlays_namespace(overlay: str) -> None:
    objects = rendered_overlay(overlay)
    (namespace,) = of_kind(objects, "Namespace")
    # A cluster without the Prometheus Operator's CRDs applies the overlay all the same.
    assert not [o for o in objects if o["apiVersion"].startswith(f"{MONITORING_GROUP}/")]
    monitoring = _monitoring(overlay)
    assert {o["kind"] for o in monitoring} == {"PodMonitor", "PrometheusRule"}
    for o in monitoring:
        assert o["apiVersion"] == f"{MONITORING_GROUP}/v1", o["metadata"]["name"]
        assert o["metadata"]["namespace"] == namespace, o["metadata"]["name"]


# -- the rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_prometheus_rules_are_the_rules_files_group_for_group(overlay: str) -> None:
    shipped = of_kind(_monitoring(overlay), "PrometheusRule")
    assert set(shipped) == {prometheus_rules.rule_name(path) for path in RULES}
    for path in RULES:
        groups = shipped[prometheus_rules.rule_name(path)]["spec"]["groups"]
        assert groups == rule_groups(path), f"{path.name} differs: run {prometheus_rules.COMMAND}"


def test_the_committed_prometheus_rules_are_generated_from_the_rules_files() -> None:
    committed = prometheus_rules.OUTPUT.read_text()
    assert committed == prometheus_rules.render(), f"stale: run {prometheus_rules.COMMAND}"


def test_deploy_applies_the_monitoring_after_the_overlay_where_the_operator_runs() -> None:
    script = (K8S / "deploy.sh").read_text()
    everything = 'kubectl apply -k "$overlay"\n'
    probe = f"kubectl api-resources --api-group={MONITORING_GROUP} -o name"
    monitoring = 'kubectl apply -k "$overlay/monitoring"'
    assert script.index(everything) < script.index(probe) < script.index(monitoring)
    assert script.index(monitoring) < script.index("rollout status")
