"""Two builds at once: what a pair's runs print is read back, and each side runs its own build."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench.shop.paired import Side, _command, _parse

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
    options = argparse.Namespace(rate=50.0, seconds=30.0)
    baseline = _command(Side("baseline", Path("/tmp/base")), options, start_at=123.0)
    assert baseline[0] == "/tmp/base/.venv/bin/python"
    assert "bench/shop/hops.py" in baseline[2]
    assert baseline[3:] == ["--rate", "50.0", "--seconds", "30.0", "--start-at", "123.0"]
    traced = _command(Side("traced", Path("/tmp/this"), tracing=0.1), options, start_at=1.0)
    assert traced[-2:] == ["--tracing", "0.1"]
