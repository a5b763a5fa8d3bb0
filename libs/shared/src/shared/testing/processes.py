"""A server started as its own process for one test, stopped by SIGTERM as an orchestrator
stops it: what it does on the way out (flush spans, drain) is what such tests check."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

START_SECONDS = 30.0
STOP_SECONDS = 30.0  # SIGTERM, then SIGKILL


@contextmanager
def serving(
    argv: list[str], *, env: dict[str, str], log: Path, ready_url: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running, its output in ``log``, once ``ready_url`` answers at all (any
    status: a probe app may not mount it); on leaving, SIGTERM and wait for the exit."""
    with log.open("wb") as output:
        process = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)  # noqa: S603 (a test's own command)
    try:
        _wait_until_answering(ready_url, process, log)
        yield process
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=STOP_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered:\n{log.read_text()}")
