"""The Prometheus configuration, recording and alerting rules of infra/prometheus, checked and
unit-tested by promtool (Debian's prometheus package: `make promtool`)."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.observability import PROMETHEUS, RULE_TESTS, RULES, promtool, rule_groups, rules
from tests.services import ROOT


def run_promtool(*arguments: str) -> None:
    result = subprocess.run(
        [promtool(), *arguments], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_configuration_and_the_rules_it_loads_are_valid() -> None:
    run_promtool("check", "config", "prometheus.yml")


@pytest.mark.parametrize("path", RULES, ids=lambda path: path.name)
def test_rules_are_valid(path: Any) -> None:
    run_promtool("check", "rules", str(path))


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda path: path.name)
def test_rule_unit_tests_pass(path: Any) -> None:
    run_promtool("test", "rules", str(path))


def test_the_configuration_loads_every_rules_file() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    assert RULES, "no rules in infra/prometheus/rules"


def test_compose_gives_prometheus_the_rules_next_to_its_configuration() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./infra/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    assert "./infra/prometheus/rules:/etc/prometheus/rules:ro" in volumes


def test_every_alert_is_unit_tested_firing() -> None:
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    fired: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert alerts - fired == set(), "alerts no unit test sees firing"


def test_every_alert_has_a_severity_and_a_runbook_section() -> None:
    observability = (ROOT / "docs" / "observability.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", observability, flags=re.MULTILINE)
    }
    for path in RULES:
        for group in rule_groups(path):
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
                runbook = rule["annotations"]["runbook"]
                document, _, anchor = runbook.partition("#")
                assert document == "docs/observability.md", rule["alert"]
                assert anchor == rule["alert"].lower(), rule["alert"]
                assert anchor in anchors, f"docs/observability.md has no section {rule['alert']}"
