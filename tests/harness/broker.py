"""The local RabbitMQ as the fault tests drive it: queue depths, stop and start."""

from __future__ import annotations

import subprocess
import time

COMMAND_SECONDS = 120.0


def rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
    )
    return result.stdout


def queue_depths(namespace: str) -> dict[str, int]:
    """Messages ready plus unacknowledged, for every queue of ``namespace``."""
    output = rabbitmqctl(
        "list_queues", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"
    )
    depths: dict[str, int] = {}
    for line in output.splitlines():
        name, ready, unacked = [*line.split("\t"), "0", "0"][:3]
        if name.startswith(f"{namespace}."):
            depths[name] = int(ready or 0) + int(unacked or 0)
    return depths


def stop_app() -> None:
    rabbitmqctl("stop_app")


def start_app() -> None:
    """Start the broker's application and wait until it answers again."""
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")
    deadline = time.monotonic() + COMMAND_SECONDS
    while time.monotonic() < deadline:
        try:
            rabbitmqctl("list_queues", "--no-table-headers", "name")
            return
        except subprocess.CalledProcessError:
            time.sleep(0.5)
    raise AssertionError("RabbitMQ did not answer after start_app")
