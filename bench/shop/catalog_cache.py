"""Catalog reads through the gateway with inventory's catalog cache on and off.

Rounds interleave the two (on, off, then off, on: neither always runs on the warmer
machine); inventory is restarted with ``INVENTORY_CATALOG_CACHE_ENABLED`` set for each run.
Besides req/s and latency, each run measures the CPU the Postgres backends serving the
inventory app spent per read (``/proc`` of the backends ``pg_stat_activity`` names
``inventory``, so other suites' load on the shared server does not count), the inventory
process's own CPU per read, and the cache's hit ratio from inventory's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import asyncpg
import httpx

from bench.shop import catalog, memory
from bench.shop.runner import run_load
from bench.shop.seed import reader
from bench.shop.stack import BenchPlatform
from bench.shop.stats import Figures, failures_note

SWITCH = "INVENTORY_CATALOG_CACHE_ENABLED"
WARMUP_SECONDS = 1.0


def read_urls(origin: str, skus: list[str]) -> list[str]:
    """Every product page and two list pages (public reads: all of them cacheable)."""
    lists = [f"{origin}/api/v1/products?limit=20", f"{origin}/api/v1/products?limit=4"]
    return [*catalog.product_urls(origin, skus), *lists]


async def _backends(db: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds so far of each backend serving the inventory app (not its worker)."""
    rows = await db.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'inventory'"
    )
    return {row["pid"]: memory.cpu_seconds(row["pid"]) for row in rows}


CACHE_SERIES = {
    "hit": 'inventory_catalog_cache_lookups_total{result="hit"}',
    "miss": 'inventory_catalog_cache_lookups_total{result="miss"}',
    "load": "inventory_catalog_cache_loads_total",
}


def _cache_counts(platform: BenchPlatform) -> dict[str, float]:
    """The cache's counters in inventory's ``/metrics`` (zeros with the cache off)."""
    text = httpx.get(f"{platform.url('inventory')}/metrics", timeout=10).text
    found = dict.fromkeys(CACHE_SERIES, 0.0)
    for line in text.splitlines():
        for name, series in CACHE_SERIES.items():
            if line.startswith(series + " "):
                found[name] = float(line.rsplit(" ", 1)[1])
    return found


def _switch(platform: BenchPlatform, on: bool) -> None:
    process = platform.processes["inventory"]
    # Its own copy: the platform's processes share one environment dict.
    process.env = {**process.env, SWITCH: "true" if on else "false"}
    platform.restart("inventory")


async def one_run(
    platform: BenchPlatform,
    db: asyncpg.Connection,
    urls: list[str],
    *,
    on: bool,
    connections: int,
    seconds: float,
) -> Figures:
    _switch(platform, on)
    spec: dict[str, Any] = {"kind": "get", "urls": urls, "connections": connections}
    # Warm: the pools filled and (on) the cache holding every page, as in steady state.
    await asyncio.to_thread(run_load, {**spec, "seconds": WARMUP_SECONDS, "warmup": 0})
    inventory_pid = platform.pids()["inventory"]
    counts_before = _cache_counts(platform)
    backends_before, inventory_before = await _backends(db), memory.cpu_seconds(inventory_pid)
    result = await asyncio.to_thread(run_load, {**spec, "seconds": seconds, "warmup": 0})
    backends_after, inventory_after = await _backends(db), memory.cpu_seconds(inventory_pid)
    counts = {k: v - counts_before[k] for k, v in _cache_counts(platform).items()}
    # A backend opened during the run spent all its CPU in it.
    postgres = sum(used - backends_before.get(pid, 0.0) for pid, used in backends_after.items())
    reads = max(result["completed"], 1)
    looked_up = counts["hit"] + counts["miss"]
    label = "on" if on else "off"
    return Figures.of(
        f"catalog cache {label}: gateway anonymous",
        result["completed"] / result["elapsed"],
        "req/s",
        result["latencies_ms"],
        errors=result["errors"],
        note=f"{connections} connections, products and list pages" + failures_note(result),
        extra={
            "postgres_cpu_ms_per_read": postgres * 1000 / reads,
            "inventory_cpu_ms_per_read": (inventory_after - inventory_before) * 1000 / reads,
            "hit_ratio": counts["hit"] / looked_up if looked_up else 0.0,
            # Database reads per request: the cache's loads, or one per read with it off.
            "database_reads_per_read": counts["load"] / reads if on else 1.0,
        },
    )


def _median(runs: list[Figures]) -> Figures:
    first = runs[0]
    extra = {key: statistics.median(r.extra[key] for r in runs) for key in first.extra}
    return Figures(
        first.scenario,
        statistics.median(r.rate for r in runs),
        first.unit,
        statistics.median(r.p50 for r in runs),
        statistics.median(r.p95 for r in runs),
        statistics.median(r.p99 for r in runs),
        errors=sum(r.errors for r in runs),
        note=f"{first.note}, median of {len(runs)}",
        extra=extra,
    )


async def cache_rows(
    platform: BenchPlatform, urls: list[str], *, rounds: int, connections: int, seconds: float
) -> list[Figures]:
    """``rounds`` interleaved pairs of runs; the median of each mode. Inventory is left
    running with the cache on, its default."""
    db = await reader(platform)
    runs: dict[bool, list[Figures]] = {True: [], False: []}
    left_on = True
    try:
        for n in range(rounds):
            for on in (True, False) if n % 2 == 0 else (False, True):
                left_on = on
                figures = await one_run(
                    platform, db, urls, on=on, connections=connections, seconds=seconds
                )
                print(
                    f"{figures.scenario}: {figures.rate:,.0f} req/s, p50 {figures.p50:.2f} ms,"
                    f" p99 {figures.p99:.2f} ms, "
                    + ", ".join(f"{k} {v:.4f}" for k, v in figures.extra.items())
                )
                runs[on].append(figures)
    finally:
        await db.close()
        if not left_on:
            _switch(platform, True)
    return [_median(runs[True]), _median(runs[False])]


def cpu_note(rows: list[Figures]) -> str | None:
    """The report's line on what the cache saves per read."""
    by = {r.scenario: r for r in rows}
    on = by.get("catalog cache on: gateway anonymous")
    off = by.get("catalog cache off: gateway anonymous")
    if on is None or off is None:
        return None
    return (
        "Catalog cache, per read through the gateway (medians): Postgres CPU "
        f"{on.extra['postgres_cpu_ms_per_read']:.4f} ms on vs "
        f"{off.extra['postgres_cpu_ms_per_read']:.4f} ms off (database reads per request "
        f"{on.extra['database_reads_per_read']:.4f} vs 1); inventory CPU "
        f"{on.extra['inventory_cpu_ms_per_read']:.3f} ms vs "
        f"{off.extra['inventory_cpu_ms_per_read']:.3f} ms; hit ratio "
        f"{on.extra['hit_ratio']:.1%}."
    )
