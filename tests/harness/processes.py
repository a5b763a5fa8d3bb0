"""One platform process (an app or a worker) started for real, its log kept in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

STOP_SECONDS = 25.0  # SIGTERM, then SIGKILL: a process may drain this long


class ManagedProcess:
    """``python -m <module>`` with its own environment; stdout and stderr go to one log file.

    Restarts append to the same file, so a fault test's log tells the whole story.
    """

    def __init__(self, name: str, module: str, *, env: dict[str, str], log: Path, cwd: Path):
        self.name = name
        self.module = module
        self.env = env
        self.log = log
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self._close_log()
        self._log_file = self.log.open("ab")
        self._log_file.write(f"--- starting {self.name} ({self.module}) ---\n".encode())
        self._log_file.flush()
        self._popen = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self.env,
            cwd=self.cwd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def stop(self, seconds: float = STOP_SECONDS) -> int | None:
        """SIGTERM, wait up to ``seconds``, then SIGKILL; the exit code."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(seconds)
            except subprocess.TimeoutExpired:
                self._note(f"--- {self.name} ignored SIGTERM for {seconds}s: SIGKILL ---")
                self._popen.kill()
                self._popen.wait(10)
        self._close_log()
        return self._popen.returncode

    def kill(self) -> None:
        """SIGKILL at once: a crash, with no chance to drain or ack."""
        if self._popen is not None and self._popen.poll() is None:
            self._note(f"--- {self.name} killed with SIGKILL ---")
            self._popen.kill()
            self._popen.wait(10)
        self._close_log()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, needle: str, *, seconds: float, since: int = 0) -> None:
        """Wait until ``needle`` appears in the log after byte ``since``; fail if the process
        exits first. The bound only stops a hung start."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if needle in self.log.read_bytes()[since:].decode(errors="replace"):
                return
            if not self.running:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"{self.name} never logged {needle!r} (exit {self.returncode}):\n{self.log_tail()}"
        )

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def _note(self, line: str) -> None:
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.write(f"{line}\n".encode())
            self._log_file.flush()

    def _close_log(self) -> None:
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.close()


def child_environment(overrides: dict[str, str]) -> dict[str, str]:
    """The test run's environment (it carries COMMERCE_ENVIRONMENT=test) plus ``overrides``;
    without the run's own ``OTEL_*`` variables: a platform traces only when its harness says
    so (``tests.harness.otlp``)."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    return {**inherited, **overrides}
