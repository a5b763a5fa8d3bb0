"""The report: a summary table on stdout, ``bench/results/<date>.md`` and a PNG chart."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.shop.stats import Figures

RESULTS = Path(__file__).resolve().parents[1] / "results"


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool


@dataclass
class Report:
    machine: dict[str, str]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rows: list[Figures] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    memory: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # kib, kib, growth
    notes: list[str] = field(default_factory=list)
    command: str = "make bench"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def table(rows: list[Figures]) -> list[str]:
    lines = [
        "| scenario | rate | unit | p50 ms | p95 ms | p99 ms | errors | note |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r.scenario} | {r.rate:,.0f} | {r.unit} | {_ms(r.p50)} | {_ms(r.p95)} | "
        f"{_ms(r.p99)} | {r.errors} | {r.note} |"
        for r in rows
    ]
    return lines


def _loop_after(machine: dict[str, str]) -> str:
    after = machine.get("python_loop_after")
    return f", {after} at the end" if after else ""


def markdown(report: Report, chart: str) -> str:
    m = report.machine
    lines = [
        f"# Benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {m['cores']} cores, {m['memory']}, Python {m['python']}, PostgreSQL "
        f"{m['postgres']}, RabbitMQ {m['rabbitmq']}, Redis {m['redis']}, nginx {m['nginx']}; "
        "every process (platform, load generator, servers) on this one machine. The cores' "
        f"speed this hour: a plain Python loop at {m['python_loop']} M iterations/s on one "
        f"(best of 3 at the start{_loop_after(m)}; it varies by the hour, as pgbench's rate "
        "does).",
        f"Load average before: {' / '.join(f'{x:.2f}' for x in report.load_before)}; after: "
        f"{' / '.join(f'{x:.2f}' for x in report.load_after)} (1 / 5 / 15 min; other "
        "engineers' test runs share the cores, so rates are lower bounds and ratios between "
        "rows of the same run are the figures to compare).",
        f"Reproduce: `{report.command}`.",
        "",
        "## Results",
        "",
        *table(report.rows),
        "",
        "## Targets",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
        *[
            f"| {t.name} | {t.goal} | {t.measured} | {'met' if t.met else 'not met'} |"
            for t in report.targets
        ],
        "",
        *_cpu_section(report.rows),
        "## Memory over the soak (RSS)",
        "",
        "| process | first KiB | last KiB | growth |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | {first:,} | {last:,} | {growth:+.1%} |"
            for name, (first, last, growth) in report.memory.items()
        ],
        "",
        *[f"- {note}" for note in report.notes],
        "",
        f"![chart]({chart})",
        "",
    ]
    return "\n".join(lines)


def _cpu_section(rows: list[Figures]) -> list[str]:
    """CPU each process spent per order, at saturation and at the sustained rate: steadier
    than rates on a shared machine (another suite's load slows a rate, not the work an order
    costs)."""
    measured = [
        (r.scenario.partition("(")[2].rstrip(")"), r.extra["cpu_ms_per_order"])
        for r in rows
        if "cpu_ms_per_order" in r.extra
    ]
    if not measured:
        return []
    names = list(measured[0][1])
    totals = [sum(spent.values()) for _, spent in measured]
    return [
        "## CPU per order",
        "",
        "| process | " + " | ".join(f"{run} ms" for run, _ in measured) + " |",
        "|---|" + "---:|" * len(measured),
        *[
            f"| {name} | "
            + " | ".join(f"{spent.get(name, 0.0):.2f}" for _, spent in measured)
            + " |"
            for name in names
        ],
        "| **all** | " + " | ".join(f"**{total:.1f}**" for total in totals) + " |",
        "",
        "Two cores bound the saga at "
        + ", ".join(
            f"{2000 / total:,.0f} orders/s ({run})"
            for (run, _), total in zip(measured, totals, strict=True)
        )
        + ", less the load generator's share.",
        "",
    ]


def chart(rows: list[Figures], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rates, latency) = plt.subplots(2, 1, figsize=(11, 9), constrained_layout=True)
    names = [r.scenario for r in rows]
    rates.barh(names, [r.rate for r in rows], color="tab:blue")
    rates.set_xlabel("per second (req/s, tps or confirmed orders/s: see the table)")
    rates.invert_yaxis()
    rates.set_title("Throughput per scenario")
    with_latency = [r for r in rows if not math.isnan(r.p50)]
    positions = range(len(with_latency))
    height = 0.27
    for offset, (label, attr) in enumerate((("p50", "p50"), ("p95", "p95"), ("p99", "p99"))):
        latency.barh(
            [p + (offset - 1) * height for p in positions],
            [getattr(r, attr) for r in with_latency],
            height=height,
            label=label,
        )
    latency.set_yticks(list(positions), [r.scenario for r in with_latency])
    latency.invert_yaxis()
    latency.set_title("Latency percentiles per scenario")
    if with_latency:  # a run of references only (``--only pgbench``) has none to scale
        latency.set_xscale("log")
        latency.set_xlabel("latency, ms (log scale)")
        latency.legend()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write(report: Report) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = f"{datetime.now(UTC):%Y-%m-%d}"
    png = RESULTS / f"{stamp}.png"
    chart(report.rows, png)
    path = RESULTS / f"{stamp}.md"
    path.write_text(markdown(report, png.name))
    return path


def summary(report: Report) -> str:
    targets = [
        f"  {'met    ' if t.met else 'NOT met'}  {t.name}: {t.measured}" for t in report.targets
    ]
    return "\n".join([*table(report.rows), "", *targets])
