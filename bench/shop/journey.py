"""Run the Locust journey headless against the gateway and read its aggregated figures."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.shop.stats import Figures
from tests.harness.platform import ROOT

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def storefront_journey(
    gateway: str, *, tokens: list[str], skus: list[str], users: int, seconds: int
) -> list[Figures]:
    """Aggregated and per-request-type rows (req/s, p50/p95/p99, failures)."""
    work = Path(tempfile.mkdtemp(prefix="bench-locust-"))
    data = work / "data.json"
    data.write_text(json.dumps({"tokens": tokens, "skus": skus}))
    prefix = work / "journey"
    subprocess.run(  # noqa: S603 (fixed argv, our own locustfile)
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--host",
            gateway,
            "-u",
            str(users),
            "-r",
            str(max(1, users // 2)),
            "-t",
            f"{seconds}s",
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--stop-timeout",
            "10",
        ],
        env={**_environment(), "BENCH_LOCUST_DATA": str(data)},
        cwd=ROOT,
        check=False,  # Locust exits 1 when any request failed: the figures say so
        capture_output=True,
        timeout=seconds + 90,
    )
    rows = []
    with (work / "journey_stats.csv").open() as stats:
        for row in csv.DictReader(stats):
            name = "journey (all)" if row["Name"] == "Aggregated" else f"journey {row['Name']}"
            rows.append(
                Figures(
                    name,
                    float(row["Requests/s"]),
                    "req/s",
                    float(row["50%"]),
                    float(row["95%"]),
                    float(row["99%"]),
                    errors=int(row["Failure Count"]),
                    note=f"{users} users" if row["Name"] == "Aggregated" else "",
                )
            )
    return rows


def _environment() -> dict[str, str]:
    import os

    return dict(os.environ)
