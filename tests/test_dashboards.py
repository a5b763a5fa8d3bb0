"""The Grafana dashboards of infra/grafana: provisioned, every query valid PromQL (promtool
checks it as a recording rule), and every metric a query or a rule names is one the
platform's processes export on /metrics (read from the running platform) or a rule records.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from tests.harness.platform import APPS, WORKERS, Platform
from tests.observability import (
    DASHBOARDS,
    PROMETHEUS_OWN,
    dashboard,
    dashboard_queries,
    exposed_names,
    metric_names,
    panels,
    promtool,
    recorded_names,
    rules,
)
from tests.services import ROOT

GRAFANA = ROOT / "infra" / "grafana"


def test_there_are_the_three_dashboards_each_with_its_own_uid() -> None:
    assert [path.name for path in DASHBOARDS] == ["messaging.json", "overview.json", "saga.json"]
    uids = [dashboard(path)["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [source] = datasources["datasources"]
    assert source["url"] == "http://prometheus:9090"
    for path in DASHBOARDS:
        for panel in panels(dashboard(path)):
            if panel["type"] == "row":
                continue
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source["uid"], panel["title"]


def test_compose_provisions_the_dashboards_grafana_reads() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    assert "./infra/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    mount = "./infra/grafana/dashboards:/var/lib/grafana/dashboards:ro"
    assert mount in grafana["volumes"]
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/commerce.yml").read_text())
    [provider] = providers["providers"]
    assert provider["options"]["path"] == mount.split(":")[1]


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    queries = list(dashboard_queries())
    rules_file = tmp_path / "dashboards.yml"
    rules_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboards",
                        "rules": [
                            {"record": f"dashboard:query_{index}", "expr": expr}
                            for index, (_, expr) in enumerate(queries)
                        ],
                    }
                ]
            }
        )
    )
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    # promtool names a bad rule by its index: say which panel it is.
    detail = "\n".join(f"query_{index}: {where}" for index, (where, _) in enumerate(queries))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{detail}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (route) (rate(http_requests_total{route=~"/api/.+"}[5m]))',
            {"http_requests_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket[1h:5m] offset 1d)))",
            {"a_seconds_bucket"},
        ),
        (
            "slo:error_ratio:rate1h > on (slo) group_left () (14.4 * (1 - slo:objective:ratio))",
            {"slo:error_ratio:rate1h", "slo:objective:ratio"},
        ),
        ('count(ALERTS{alertstate="firing", x="and or(y)"}) or vector(1e3)', {"ALERTS"}),
        ("a unless on (q) (sum without (p) (b) > bool 0) and c", {"a", "b", "c"}),
    ],
)
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


async def _expositions(platform: Platform) -> list[str]:
    async with httpx.AsyncClient(timeout=30) as client:
        pages = await asyncio.gather(
            *(client.get(f"{platform.probe_url(name)}/metrics") for name in (*APPS, *WORKERS))
        )
    for page in pages:
        page.raise_for_status()
    return [page.text for page in pages]


_BUCKET_SELECTOR = re.compile(r'(\w+_bucket)\{[^}]*\ble="([^"]+)"')


@pytest.mark.e2e
@pytest.mark.slow
async def test_dashboards_and_rules_name_only_metrics_the_platform_exports(
    platform: Platform,
) -> None:
    expositions = await _expositions(platform)
    known = set().union(*map(exposed_names, expositions)) | recorded_names() | PROMETHEUS_OWN
    queries = [*dashboard_queries()]
    queries += [(f"rule {rule.get('record') or rule['alert']}", rule["expr"]) for rule in rules()]
    unknown = {f"{where}: {name}" for where, expr in queries for name in metric_names(expr) - known}
    assert unknown == set()


@pytest.mark.e2e
@pytest.mark.slow
async def test_the_buckets_the_slos_count_are_bucket_bounds_of_their_histograms(
    platform: Platform,
) -> None:
    # le="0.5" must be written as the client writes the bound, or the SLI is silently empty.
    bounds = {
        (name, bound)
        for text in await _expositions(platform)
        for name, bound in _BUCKET_SELECTOR.findall(text)
    }
    wanted = {
        (name, bound) for rule in rules() for name, bound in _BUCKET_SELECTOR.findall(rule["expr"])
    }
    assert wanted
    assert wanted - bounds == set()


@pytest.mark.e2e
@pytest.mark.slow
async def test_each_worker_reports_its_queues_depths(platform: Platform) -> None:
    # Read by a periodic job of each consumer: the first values come one interval after start.
    expected = {
        "inventory-worker": {"inventory.reservations", "inventory.stock-alerts"},
        "orders-worker": {"orders.saga", "orders.catalog"},
        "payments-worker": {"payments.requests"},
    }
    async with httpx.AsyncClient(timeout=30) as client, asyncio.timeout(120):
        for worker, queues in expected.items():
            while True:
                page = await client.get(f"{platform.probe_url(worker)}/metrics")
                reported = set(
                    re.findall(r'^messaging_queue_consumers\{queue="([^"]+)"', page.text, re.M)
                )
                if reported >= queues:
                    break
                await asyncio.sleep(1)
            assert (
                set(
                    re.findall(r'^messaging_dead_letter_messages\{queue="([^"]+)"', page.text, re.M)
                )
                >= queues
            )
