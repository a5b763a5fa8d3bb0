"""What the figures were measured on: cores, memory, versions, and how loaded it was."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable


def _command(*argv: str) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)  # noqa: S603 (fixed tool names)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else "unknown"


def python_speed(
    iterations: int = 2_000_000, repeats: int = 3, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Iterations per second of a plain Python loop on one core, the best of
    ``repeats``: the speed of the machine's cores for the platform's own processes, which
    varies by the hour as pgbench's does (a run's rates compare with another's only at
    similar speeds)."""
    best = float("inf")
    for _ in range(repeats):
        started = clock()
        total = 0
        for number in range(iterations):
            total += number
        best = min(best, clock() - started)
    return iterations / best


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def describe() -> dict[str, str]:
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    postgres = _command("psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW server_version")
    return {
        "cores": str(os.cpu_count()),
        "memory": f"{memory_kib / 1024 / 1024:.0f} GiB",
        "python": platform.python_version(),
        "postgres": postgres.split()[0],
        "rabbitmq": _command("rabbitmqctl", "-q", "version"),
        "redis": _command("redis-server", "--version").split()[2].removeprefix("v="),
        "nginx": _nginx_version(),
        "python_loop": f"{python_speed() / 1e6:.1f}",  # millions per second
    }


def _nginx_version() -> str:
    try:
        result = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=30)  # noqa: S607 (nginx from PATH, like an operator)
    except OSError:
        return "not installed"
    return result.stderr.strip().rpartition("/")[2] or "unknown"
