"""Resident memory and CPU time of the platform's processes (from /proc)."""

from __future__ import annotations

import os
from pathlib import Path


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def sample(pids: dict[str, int]) -> dict[str, int]:
    return {name: rss_kib(pid) for name, pid in pids.items()}


def growth(first: dict[str, int], last: dict[str, int]) -> dict[str, float]:
    """Growth of each process's RSS from ``first`` to ``last``, as a fraction."""
    return {name: (last[name] - kib) / kib for name, kib in first.items() if kib and name in last}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (0 when the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def pids_named(command: str) -> list[int]:
    """This host's processes whose command name is ``command`` (``postgres``, ``beam.smp``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


SERVERS = {"postgres": "postgres", "rabbitmq": "beam.smp"}


def server_cpu() -> dict[str, dict[int, float]]:
    """CPU seconds so far of each process of the shared servers, by server."""
    return {
        server: {pid: cpu_seconds(pid) for pid in pids_named(command)}
        for server, command in SERVERS.items()
    }


def server_cpu_since(before: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds each server spent since ``before``, over its processes alive at both
    readings (Postgres forks a backend per connection; the harness's outlive the run)."""
    now = server_cpu()
    return {
        server: sum(now[server][pid] - used for pid, used in pids.items() if pid in now[server])
        for server, pids in before.items()
    }
