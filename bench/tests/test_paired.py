"""Two builds at once: what a pair's runs print is read back, each side runs its own build,
and both are told when to start once both are ready."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bench.shop import hops, orders
from bench.shop.hops import READY
from bench.shop.paired import Side, _command, _parse, _tell, _until_ready

HOPS_OUTPUT = """\
load started at 1765000000.5
CPU ms per order: {'orders': 2.5, 'gateway': 1.25, 'postgres': 4.0} total 7.750
POST /orders ms: p50 6.1 p99 21.5
1500 orders confirmed at 50/s offered; ms per hop:
  hop                                                      p50     p90     p99
  orders relays order_created                             10.0    20.9   218.4
  placed → confirmed                                     166.1   220.6   524.1
"""


def test_a_runs_figures_are_read_from_what_hops_prints() -> None:
    run = _parse("A", HOPS_OUTPUT)
    assert run.cpu == {"orders": 2.5, "gateway": 1.25, "postgres": 4.0}
    assert run.cpu_total == 7.75
    assert (run.p50, run.p99, run.post_p99) == (166.1, 524.1, 21.5)


def test_a_run_without_figures_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="no figures"):
        _parse("A", "Traceback (most recent call last): ...")


def test_each_side_runs_this_hops_script_with_its_own_interpreter_and_options() -> None:
    options = argparse.Namespace(rate=50.0, seconds=30.0, warm_up_orders=2000)
    baseline = _command(Side("baseline", Path("/tmp/base")), options)
    assert baseline[0] == "/tmp/base/.venv/bin/python"
    assert "bench/shop/hops.py" in baseline[2]
    assert baseline[3:] == [
        "--rate",
        "50.0",
        "--seconds",
        "30.0",
        "--warm-up-orders",
        "2000",
        "--start-when-told",
    ]
    traced = _command(Side("traced", Path("/tmp/this"), tracing=0.1), options)
    assert traced[-2:] == ["--tracing", "0.1"]


def _side(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_side_is_read_up_to_its_ready_line_and_then_told_when_to_start() -> None:
    side = _side(
        f"print('seeded'); print({READY!r}, flush=True); print('load started at', float(input()))"
    )
    assert _until_ready(side) == f"seeded\n{READY}\n"
    _tell(side, "123.5\n")
    assert side.communicate(timeout=30)[0] == "load started at 123.5\n"


def test_a_side_that_ends_before_it_is_ready_gives_all_it_printed() -> None:
    side = _side("print('Traceback (most recent call last): ...')")
    assert _until_ready(side) == "Traceback (most recent call last): ...\n"
    side.wait(timeout=30)
    _tell(side, "1.0\n")  # it has ended: nothing to tell, and no error
    assert side.communicate(timeout=30)[0] == ""


def test_the_hops_warm_up_runs_at_the_rate_of_make_benchs() -> None:
    assert hops.WARM_UP_RATE == orders.WARM_UP_RATE
