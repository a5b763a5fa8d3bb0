"""Two builds measured at once: the fair comparison on a machine whose speed drifts.

``python -m bench.shop.paired --baseline DIR [--pairs 5] [--rate 50] [--seconds 30]
[--warm-up-orders 2000]``
``python -m bench.shop.paired --tracing 0.1 [--pairs 5] ...``

Alternating runs compare builds minutes apart, and this machine's speed moves by a factor of
two within minutes. Here both builds run ``bench.shop.hops`` at the same moment, each its own
platform, warmed up as ``make bench`` warms up before its search, at the same offered rate,
their loads starting at one agreed second once both are ready, so whatever the machine
does, it does to both. The first form compares this checkout with a worktree of
another commit (its platform and harness, this checkout's ``hops.py`` run in it); the second
compares this checkout untraced with itself traced at the ratio. Per pair it prints CPU per
order (each platform process and the platform's own Postgres backends, ``/proc``),
placed → confirmed p50 and p99 and p99 POST /orders, then the median of the pairs' ratios
(B ÷ A). The sides swap places in every other pair.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.shop.hops import READY

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
START_LEAD_SECONDS = 2.0  # from telling both sides the moment to that moment
# A pair's whole life, bounded: start, seed, warm-up, load and settling (each bounded by
# itself too); a side still running then is killed, and the pair fails for want of figures.
PAIR_TIMEOUT_SECONDS = 1800.0
CPU_LINE = re.compile(r"^CPU ms per order: (\{.*\}) total ([\d.]+)$", re.M)
POST_LINE = re.compile(r"^POST /orders ms: p50 ([\d.]+) p99 ([\d.]+)$", re.M)
STARTED_LINE = re.compile(r"^load started at ([\d.]+)$", re.M)
MAX_SKEW_SECONDS = 3.0
LATENCY_LINE = re.compile(r"^\s+placed → confirmed\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", re.M)


@dataclass(frozen=True)
class Side:
    label: str
    checkout: Path
    tracing: float | None = None


@dataclass(frozen=True)
class Run:
    cpu: dict[str, float]
    cpu_total: float
    p50: float
    p99: float
    post_p99: float


def _command(side: Side, options: argparse.Namespace) -> list[str]:
    arguments = [
        "--rate",
        str(options.rate),
        "--seconds",
        str(options.seconds),
        "--warm-up-orders",
        str(options.warm_up_orders),
        "--start-when-told",
    ]
    if side.tracing is not None:
        arguments += ["--tracing", str(side.tracing)]
    # This checkout's hops.py, run with the side's interpreter in the side's checkout, so
    # that the platform and harness it imports are that build's own.
    script = (
        "import runpy, sys; sys.argv = ['hops', *sys.argv[1:]]; "
        f"runpy.run_path({str(HERE.with_name('hops.py'))!r}, run_name='__main__')"
    )
    return [str(side.checkout / ".venv" / "bin" / "python"), "-c", script, *arguments]


def _parse(label: str, output: str) -> Run:
    cpu, latency = CPU_LINE.search(output), LATENCY_LINE.search(output)
    post = POST_LINE.search(output)
    if cpu is None or latency is None or post is None:
        raise RuntimeError(f"{label}: no figures in its output:\n{output[-3000:]}")
    return Run(
        cpu=ast.literal_eval(cpu.group(1)),
        cpu_total=float(cpu.group(2)),
        p50=float(latency.group(1)),
        p99=float(latency.group(3)),
        post_p99=float(post.group(2)),
    )


def run_pair(first: Side, second: Side, options: argparse.Namespace) -> tuple[Run, Run]:
    """Both sides at once; their runs in the order given.

    Each side starts its platform, seeds it and warms it up, says it is ready and waits; once
    both are, each is told the same moment to start its load at."""
    processes = [
        subprocess.Popen(  # noqa: S603 (our own interpreters and script)
            _command(side, options),
            cwd=side.checkout,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for side in (first, second)
    ]
    watchdogs = [threading.Timer(PAIR_TIMEOUT_SECONDS, process.kill) for process in processes]
    for watchdog in watchdogs:
        watchdog.start()
    try:
        before = [_until_ready(process) for process in processes]
        start_at = time.time() + START_LEAD_SECONDS
        for process in processes:
            _tell(process, f"{start_at}\n")
        outputs = [
            early + process.communicate()[0]
            for early, process in zip(before, processes, strict=True)
        ]
    finally:
        for watchdog in watchdogs:
            watchdog.cancel()
    starts = [STARTED_LINE.search(output) for output in outputs]
    if None in starts:
        raise RuntimeError(
            f"a run did not start its load:\n{outputs[0][-2000:]}{outputs[1][-2000:]}"
        )
    skew = abs(float(starts[0].group(1)) - float(starts[1].group(1)))  # type: ignore[union-attr]
    if skew > MAX_SKEW_SECONDS:
        raise RuntimeError(f"the loads started {skew:.1f} s apart: raise START_LEAD_SECONDS")
    return _parse(first.label, outputs[0]), _parse(second.label, outputs[1])


def _tell(process: subprocess.Popen[str], line: str) -> None:
    """Send ``line`` to a side now (a side that already ended is left be)."""
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        process.stdin.write(line)
        process.stdin.flush()


def _until_ready(process: subprocess.Popen[str]) -> str:
    """What a side printed up to and including its ready line (all of it if it ended)."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.strip() == READY:
            break
    return "".join(lines)


def _ratio(b: float, a: float) -> float:
    return b / a if a else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description="two builds side by side, at once (127.0.0.1)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--baseline", type=Path, help="a worktree of the build to compare with")
    which.add_argument("--tracing", type=float, metavar="RATIO", help="untraced against traced")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=50.0, help="offered orders/s, each side")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--warm-up-orders",
        type=int,
        default=2000,
        help="each side's warm-up before its load, as make bench's (0: none)",
    )
    options = parser.parse_args()
    if options.baseline is not None:
        a, b = Side("baseline", options.baseline.resolve()), Side("this", ROOT)
    else:
        a, b = Side("untraced", ROOT), Side(f"traced {options.tracing:g}", ROOT, options.tracing)
    print(f"A = {a.label} ({a.checkout}), B = {b.label}; {options.rate:g}/s each, at once")
    cpu_ratios: list[float] = []
    p50_ratios: list[float] = []
    p99_ratios: list[float] = []
    post_ratios: list[float] = []
    for pair in range(options.pairs):
        swapped = pair % 2 == 1
        first, second = run_pair(b, a, options) if swapped else run_pair(a, b, options)
        run_a, run_b = (second, first) if swapped else (first, second)
        cpu_ratios.append(_ratio(run_b.cpu_total, run_a.cpu_total))
        p50_ratios.append(_ratio(run_b.p50, run_a.p50))
        p99_ratios.append(_ratio(run_b.p99, run_a.p99))
        post_ratios.append(_ratio(run_b.post_p99, run_a.post_p99))
        print(
            f"pair {pair + 1}: CPU ms/order {run_a.cpu_total:.2f} → {run_b.cpu_total:.2f} "
            f"({cpu_ratios[-1]:.2f}); placed → confirmed p50 {run_a.p50:.0f} → {run_b.p50:.0f} "
            f"ms, p99 {run_a.p99:.0f} → {run_b.p99:.0f} ms; p99 POST /orders "
            f"{run_a.post_p99:.1f} → {run_b.post_p99:.1f} ms"
        )
        print(f"  A {run_a.cpu}\n  B {run_b.cpu}")
        sys.stdout.flush()
    print(
        f"median of {options.pairs} pairs, B ÷ A: CPU per order "
        f"{statistics.median(cpu_ratios):.3f}, placed → confirmed p50 "
        f"{statistics.median(p50_ratios):.3f}, p99 {statistics.median(p99_ratios):.3f}; "
        f"p99 POST /orders {statistics.median(post_ratios):.3f}"
    )


if __name__ == "__main__":
    main()
