"""What the rule and dashboard tests share: the files, promtool, and metric names in PromQL.

Metric names are found without a PromQL parser: strings, label matchers, groupings and
ranges are cut out first, then every identifier not called as a function and not a keyword
is a metric name (``metric_names``; its own test shows the cases it handles).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.services import ROOT

PROMETHEUS = ROOT / "infra" / "prometheus"
RULES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "infra" / "grafana" / "dashboards").glob("*.json"))

# Series Prometheus makes itself, not scraped from the platform.
PROMETHEUS_OWN = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})


def promtool() -> str:
    """promtool's path; the test skips without it, except in CI where it must be there."""
    found = shutil.which("promtool")
    if found is None:
        message = (
            "promtool is not installed: `make promtool` installs Debian's prometheus package, "
            "which ships it; the Prometheus rules and Grafana queries are not checked"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def rule_groups(path: Path) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(path.read_text())["groups"]
    return groups


def rules() -> Iterator[dict[str, Any]]:
    for path in RULES:
        for group in rule_groups(path):
            yield from group["rules"]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(where, expr) of every target of every panel of every dashboard."""
    for path in DASHBOARDS:
        for panel in panels(dashboard(path)):
            for target in panel.get("targets", []):
                yield f"{path.name}: {panel['title']} ({target['refId']})", target["expr"]


_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\[\]]*\]")
# Whole identifiers only (not a prefix of a longer one), not preceded by a digit or a dot
# (a duration's unit, an exponent) and not followed by "(" (a function or an aggregation).
_IDENTIFIER = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
    | {"and", "or", "unless", "offset", "atan2", "inf", "nan", "Inf", "NaN"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name not in _KEYWORDS}


_SUFFIXES = {
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}


def exposed_names(exposition: str) -> set[str]:
    """The series names a /metrics page offers, including the histograms' series of a
    family that has no sample yet (its TYPE line is there all the same)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            names.update(name + suffix for suffix in _SUFFIXES.get(kind, ()))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
