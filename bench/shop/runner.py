"""Start the load generator as a separate process and read its result."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.harness.platform import ROOT

SLACK_SECONDS = 120.0  # beyond the spec's own duration: only stops a hung generator


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``python -m bench.shop.load`` with ``spec``; its JSON result."""
    bound = float(spec["seconds"]) + float(spec.get("warmup", 1.0)) + SLACK_SECONDS
    result = subprocess.run(
        [sys.executable, "-m", "bench.shop.load"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=bound,
        check=True,
    )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer
