"""An ``OTEL_PROPAGATORS`` naming a propagator that is not installed (``b3``, often set for a
whole cluster) never stops a process from starting, tracing on or off (docs/tracing.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# What each process imports first, in its order (its `__main__` and its worker).
ENTRY_MODULES = {
    "gateway": "import gateway.cli, gateway.main, gateway.server",
    "inventory": "import inventory.config, inventory.main, inventory.worker",
    "orders": "import orders.config, orders.main, orders.worker",
    "payments": "import payments.config, payments.main, payments.worker",
}


@pytest.mark.parametrize("propagators", ["b3", "tracecontext,"])
@pytest.mark.parametrize("name", sorted(ENTRY_MODULES))
def test_every_process_imports_with_a_propagator_that_is_not_installed(
    name: str, propagators: str
) -> None:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    ran = subprocess.run(
        [sys.executable, "-c", ENTRY_MODULES[name]],
        env={**inherited, "OTEL_PROPAGATORS": propagators},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
