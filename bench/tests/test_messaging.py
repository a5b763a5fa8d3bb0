"""The messaging benchmark's baseline mode: each build runs its own script, what a run
prints is read back, and rounds, medians and ratios are laid out as rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.messaging import (
    METRICS,
    Build,
    build_command,
    format_header,
    format_row,
    medians,
    parse_figures,
    ratios,
    round_order,
)

RUN_OUTPUT = """\
messaging benchmark (1 relay process, 1 consumer process, prefetch 200, relay batch 500, \
quorum queue, persistent + confirms)
  throughput: 3000/3000 events drained in 0.55 s = 5,443 events/s
  CPU per event while draining: relay 82 us, consumer 114 us, broker 68 us, postgres 1,050 us \
(total 1,314 us)
  latency at 300/s offered (299/s achieved, 900/900 handled): p50 10.9 ms, p99 17.1 ms, \
mean 11.2 ms, max 30.4 ms; the producer spent 410 us of CPU per commit
"""


def test_a_builds_figures_are_read_from_what_its_run_prints() -> None:
    assert parse_figures("this", RUN_OUTPUT) == {
        "events/s": 5443,
        "relay us": 82,
        "consumer us": 114,
        "broker us": 68,
        "postgres us": 1050,
        "total us": 1314,
        "p50 ms": 10.9,
        "p99 ms": 17.1,
    }


def test_a_run_without_figures_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="baseline: no figures"):
        parse_figures("baseline", "Traceback (most recent call last): ...")


def test_each_build_runs_its_own_script_with_its_own_interpreter() -> None:
    build = Build("baseline", Path("/tmp/base/.venv/bin/python"), Path("/tmp/base"))
    assert build_command(build, events=3000, rate=300, seconds=3.0) == [
        "/tmp/base/.venv/bin/python",
        "/tmp/base/bench/messaging.py",
        "--events",
        "3000",
        "--rate",
        "300",
        "--seconds",
        "3.0",
    ]


def test_the_baseline_goes_first_in_odd_rounds_and_second_in_even_ones() -> None:
    assert [round_order(n) for n in (1, 2, 3)] == [
        ("baseline", "this"),
        ("this", "baseline"),
        ("baseline", "this"),
    ]


def test_medians_per_metric_and_ratios_this_over_baseline() -> None:
    runs = [{"events/s": 100.0, "p99 ms": 9.0}, {"events/s": 300.0}, {"events/s": 200.0}]
    assert medians(runs) == {"events/s": 200.0, "p99 ms": 9.0}
    baseline = {"events/s": 200.0, "p99 ms": 10.0, "relay us": 0.0}
    this = {"events/s": 250.0, "p99 ms": 5.0, "relay us": 3.0}
    assert ratios(this, baseline) == {"events/s": 1.25, "p99 ms": 0.5}  # no ratio to a zero


def test_rows_line_up_under_the_header_and_show_missing_figures_as_a_dash() -> None:
    figures = parse_figures("this", RUN_OUTPUT)
    row = format_row("round 1 this", figures)
    header = format_header()
    assert len(row) == len(header)
    assert row.startswith("round 1 this")
    assert row.split()[-2:] == ["10.9", "17.1"]
    assert "1,314" in row
    assert format_row("this ÷ baseline", {"events/s": 1.234}, ratio=True).split()[3:] == [
        "1.23",
        *["-"] * (len(METRICS) - 1),
    ]
