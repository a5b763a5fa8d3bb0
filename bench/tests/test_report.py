"""The report files: written whatever rows a run produced."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.shop import report
from bench.shop.stats import Figures

MACHINE = {
    "cores": "2",
    "memory": "24 GiB",
    "python": "3.11.7",
    "postgres": "15.20",
    "rabbitmq": "3.10.8",
    "redis": "7.0.15",
    "nginx": "1.22.1",
    "python_loop": "11.4",
}


@pytest.mark.parametrize(
    "rows",
    [
        [Figures("pgbench: reservation transaction", 1900.0, "tps", note="8 clients")],
        [
            Figures("pgbench: reservation transaction", 1900.0, "tps"),
            Figures.of("catalog: gateway anonymous", 950.0, "req/s", [30.0, 32.0, 90.0]),
        ],
    ],
    ids=["references only", "with latencies"],
)
def test_a_run_writes_its_report_and_chart(
    rows: list[Figures], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    written = report.write(report.Report(machine=MACHINE, load_before=(1.0, 1.0, 1.0), rows=rows))
    text = written.read_text()
    assert "a plain Python loop at 11.4 M iterations/s" in text
    assert "| pgbench: reservation transaction | 1,900 | tps |" in text
    assert written.with_suffix(".png").stat().st_size > 0


def test_the_machine_line_gives_the_loop_speed_at_the_end_when_it_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    machine = MACHINE | {"python_loop_after": "9.8"}
    written = report.write(report.Report(machine=machine, load_before=(1.0, 1.0, 1.0)))
    assert "11.4 M iterations/s on one (best of 3 at the start, 9.8 at the end;" in (
        written.read_text()
    )
