"""What the Kubernetes tests share: rendering a kustomization and reading its objects.

``kubectl kustomize`` renders (``KUBECTL`` names another kubectl; ``make k8s-check`` installs
Debian's); a test that needs it skips without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.services import ROOT

K8S = ROOT / "infra" / "k8s"
OVERLAYS = ("dev", "production")
APIS = ("gateway", "inventory", "orders", "payments")
WORKERS = ("inventory-worker", "orders-worker", "payments-worker")
# The pod label naming the process, as the metrics' process label (docs/observability.md).
PROCESS_LABEL = "process"
KUBECTL_MISSING = "kubectl is not installed: make k8s-check installs Debian's kubernetes-client"

Object = dict[str, Any]


def kubectl() -> str | None:
    return os.environ.get("KUBECTL") or shutil.which("kubectl")


needs_kubectl = pytest.mark.skipif(kubectl() is None, reason=KUBECTL_MISSING)


@cache
def rendered(directory: Path) -> tuple[Object, ...]:
    """Every object ``kubectl kustomize`` renders from a kustomization directory."""
    command = kubectl()
    if command is None:
        pytest.skip(KUBECTL_MISSING)
    result = subprocess.run(
        [command, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return tuple(document for document in yaml.safe_load_all(result.stdout) if document)


def rendered_overlay(overlay: str) -> tuple[Object, ...]:
    return rendered(K8S / "overlays" / overlay)


def of_kind(objects: tuple[Object, ...], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def environment_of(objects: tuple[Object, ...], container: Object) -> dict[str, Object]:
    """Every variable of a container: its ConfigMaps' keys (envFrom), then its own env."""
    config_maps = of_kind(objects, "ConfigMap")
    variables: dict[str, Object] = {}
    for source in container.get("envFrom", []):
        data = config_maps[source["configMapRef"]["name"]]["data"]
        variables.update({key: {"name": key, "value": value} for key, value in data.items()})
    variables.update({entry["name"]: entry for entry in container.get("env", [])})
    return variables


def selects(selector: Object, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects these labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and present not in expression["values"]:
            return False
        if operator == "NotIn" and present in expression["values"]:
            return False
        if operator == "Exists" and present is None:
            return False
        if operator == "DoesNotExist" and present is not None:
            return False
    return True
