"""The test plugin leaves the local broker able to declare dead-lettering quorum queues."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from shared.testing.broker import heal_dead_letter_supervisor

pytestmark = pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl")


def _supervisor() -> str:
    return subprocess.run(
        ["rabbitmqctl", "-q", "eval", "whereis(rabbit_fifo_dlx_sup)."],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


async def test_a_live_dead_letter_supervisor_is_left_alone() -> None:
    assert _supervisor() != "undefined"
    assert await heal_dead_letter_supervisor() is False
    assert _supervisor() != "undefined"
