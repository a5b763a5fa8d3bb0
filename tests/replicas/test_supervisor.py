"""The supervisor of ``make replicas``: output prefixed by name, a process that exits is
started again (after a growing pause), SIGTERM stops every process and nothing restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.replicas.supervisor import (
    FIRST_PAUSE_SECONDS,
    MAX_PAUSE_SECONDS,
    next_pause,
    read_procfile,
)
from tests.harness.platform import ROOT


def test_a_procfile_is_read_as_honcho_reads_it() -> None:
    text = "# comment\n\nweb: python -m web --port 1\nworker:  run it  \n"
    assert read_procfile(text) == {"web": "python -m web --port 1", "worker": "run it"}
    with pytest.raises(ValueError, match="not a Procfile line"):
        read_procfile("no separator here\n")


def test_the_pause_doubles_while_a_process_keeps_dying_and_starts_over_once_it_lived() -> None:
    pause = next_pause(0.0, 0.1)
    assert pause == FIRST_PAUSE_SECONDS
    for _ in range(10):
        pause = next_pause(pause, 0.1)
    assert pause == MAX_PAUSE_SECONDS
    assert next_pause(pause, 120.0) == FIRST_PAUSE_SECONDS


def test_a_process_that_exits_is_restarted_and_sigterm_stops_every_process(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "starts"
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"flaky: sh -c 'echo started >> {marker}; echo hello; exit 3'\n"
        "steady: sh -c 'trap \"echo draining; exit 0\" TERM; while true; do sleep 0.1; done'\n"
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "infra.replicas.supervisor", str(procfile)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if marker.exists() and len(marker.read_text().splitlines()) >= 3:
                break
            time.sleep(0.1)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        output, _ = supervisor.communicate(timeout=40)
    assert len(marker.read_text().splitlines()) >= 3, output  # started, then twice again
    assert supervisor.returncode == 0, output
    assert "flaky  | hello" in output
    assert "flaky exited with 3" in output
    assert "steady | draining" in output  # SIGTERM reached it, and it drained
    assert "every process stopped" in output
