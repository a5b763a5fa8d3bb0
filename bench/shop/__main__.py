"""The whole-platform benchmark: ``python -m bench.shop`` (``make bench`` runs it).

Starts the platform with the end-to-end harness (fresh database, broker namespace, free
ports), seeds it through the gateway, then runs each scenario with the load generator in a
separate process on 127.0.0.1, every run bounded in time:

1. pgbench with the reservation transaction (the database's limit);
2. catalog reads: the inventory service direct, nginx in front of it, the gateway
   anonymous and with a bearer token (``--rounds`` rounds interleaved; medians); then
   through the gateway with inventory's catalog cache on and off (``--catalog-cache-rounds``
   interleaved pairs; Postgres CPU per read);
3. order placement through the gateway at saturation and at a fixed offered rate;
4. the mixed storefront journey with Locust;
5. a soak (``--soak-seconds``) at a moderate mixed load, sampling every process's memory.

Prints a summary table and writes ``bench/results/<date>.md`` with a PNG chart. It never
passes or fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from bench.shop import (
    catalog,
    catalog_cache,
    journey,
    machine,
    memory,
    orders,
    profiling,
    references,
    report,
)
from bench.shop.runner import run_load
from bench.shop.seed import Catalog, reader, seed
from bench.shop.stack import BenchPlatform, running_platform
from bench.shop.stats import Figures
from bench.shop.tracing import traced

# The targets (the report says met or not met; nothing fails on them).
CONFIRMED_PER_SECOND = 250.0
POST_P99_MS = 50.0
SAGA_P99_MS = 250.0
GATEWAY_SHARE_OF_NGINX = 0.60
CACHE_POSTGRES_CPU_SHARE = 0.5  # the catalog cache at least halves Postgres's CPU per read
MEMORY_GROWTH = 0.10


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="whole-platform benchmark (127.0.0.1 only)")
    parser.add_argument("--seconds", type=float, default=8.0, help="each catalog run")
    parser.add_argument("--rounds", type=int, default=2, help="catalog rounds (medians)")
    parser.add_argument("--catalog-connections", type=int, default=32)
    parser.add_argument(
        "--catalog-cache-rounds",
        type=int,
        default=2,
        help="interleaved pairs of catalog runs with inventory's cache on and off (each --seconds)",
    )
    parser.add_argument("--order-seconds", type=float, default=20.0)
    parser.add_argument("--order-connections", type=int, default=32)
    parser.add_argument(
        "--rate", type=float, default=CONFIRMED_PER_SECOND / 2, help="fixed offered orders/s"
    )
    parser.add_argument(
        "--sustain-probes",
        type=int,
        # Five climbed from 150/s to 262/s and stopped at the first rate missed, so a run
        # that kept pace at 228 but not 262 reported 228: two more narrow it to about 3%.
        default=7,
        help="fixed-rate runs searching the highest rate the saga keeps pace with (0: none)",
    )
    parser.add_argument(
        "--sustain-from", type=float, default=150.0, help="the search's first rate, orders/s"
    )
    parser.add_argument(
        "--warm-up-orders",
        type=int,
        default=2000,
        help="orders placed and settled, unmeasured, before the search (0: none)",
    )
    parser.add_argument("--journey-seconds", type=int, default=30)
    parser.add_argument("--users", type=int, default=20, help="Locust users")
    parser.add_argument("--soak-seconds", type=float, default=60.0)
    parser.add_argument("--soak-rate", type=float, default=40.0, help="orders/s in the soak")
    parser.add_argument("--customers", type=int, default=16)
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated subset: pgbench,catalog,catalog-cache,orders,journey,soak",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy every process during the saturation run, into DIR"
    )
    parser.add_argument(
        "--tracing",
        type=float,
        metavar="RATIO",
        help="trace every process, parent-based sampling at RATIO (0.1), into a local sink",
    )
    parser.add_argument("--no-write", action="store_true", help="print, write no report")
    return parser.parse_args()


def _median(runs: list[Figures]) -> Figures:
    first = runs[0]
    return Figures(
        first.scenario,
        statistics.median(r.rate for r in runs),
        first.unit,
        statistics.median(r.p50 for r in runs),
        statistics.median(r.p95 for r in runs),
        statistics.median(r.p99 for r in runs),
        errors=sum(r.errors for r in runs),
        note=f"{first.note}, median of {len(runs)}",
    )


def catalog_rows(
    platform: BenchPlatform, seeded: Catalog, options: argparse.Namespace
) -> list[Figures]:
    inventory = platform.url("inventory")
    token = seeded.customer_tokens[0]
    with ExitStack() as stack:
        origins = {"inventory direct": inventory, "gateway anonymous": platform.gateway}
        if references.nginx_available():
            nginx = stack.enter_context(
                references.nginx_in_front_of(inventory.removeprefix("http://"))
            )
            origins["nginx → inventory"] = nginx
        runs: dict[str, list[Figures]] = {}
        for _ in range(options.rounds):
            for name, origin in origins.items():
                runs.setdefault(f"catalog: {name}", []).append(
                    catalog.read_catalog(
                        f"catalog: {name}",
                        origin,
                        seeded.skus,
                        token=None,
                        connections=options.catalog_connections,
                        seconds=options.seconds,
                    )
                )
            runs.setdefault("catalog: gateway bearer", []).append(
                catalog.read_catalog(
                    "catalog: gateway bearer",
                    platform.gateway,
                    seeded.skus,
                    token=token,
                    connections=options.catalog_connections,
                    seconds=options.seconds,
                )
            )
    return [_median(r) for r in runs.values()]


async def order_rows(
    platform: BenchPlatform, seeded: Catalog, options: argparse.Namespace
) -> list[Figures]:
    db = await reader(platform)
    try:
        common = {"base": platform.gateway, "tokens": seeded.customer_tokens, "skus": seeded.skus}
        pids = platform.pids()
        rows: list[Figures] = []
        # The search first, on the platform as it starts: run after the saturation burst,
        # even vacuumed, its probes fell behind at rates a fresh platform kept pace with
        # (159/s: p99 2.4 s, against 0.6 s at 160/s on a fresh one, the same hour).
        if options.sustain_probes:
            if options.warm_up_orders:
                placed = await orders.warm_up(db, count=options.warm_up_orders, **common)
                print(f"warm-up: {placed} orders placed and settled, not measured")
            tried = await orders.find_sustained_rate(
                db,
                first_rate=options.sustain_from,
                probes=options.sustain_probes,
                seconds=options.order_seconds,
                pids=pids,
                **common,
            )
            sustained = orders.sustained_row(tried)
            if sustained is not None:
                rows.append(sustained)
                print("CPU ms per order, sustained:", sustained.extra["cpu_ms_per_order"])
        with profiling.profiled(pids, options.profile, options.order_seconds):
            saturated, cpu = await orders.place_orders_measured(
                db,
                "saturation",
                pids=pids,
                seconds=options.order_seconds,
                connections=options.order_connections,
                **common,
            )
        saturated.saga.extra["cpu_ms_per_order"] = cpu
        print("CPU ms per order at saturation:", cpu)
        rows += [saturated.post, saturated.saga]
        # The burst left tens of thousands of dead row versions and tables not analyzed yet,
        # which autovacuum reaches only after its naptime: the fixed rate is measured on the
        # database as autovacuum would leave it, as pgbench vacuums before its runs.
        await db.execute("VACUUM (ANALYZE)")
        # The cores' speed just before, and the CPU per order, as the probes have them: a
        # miss at the fixed rate then says whether the machine slowed or the orders cost more.
        loop_speed = round(machine.python_speed() / 1e6, 1)
        fixed, cpu = await orders.place_orders_measured(
            db,
            f"{options.rate:g}/s",
            pids=pids,
            seconds=options.order_seconds,
            rate=options.rate,
            **common,
        )
        fixed.saga.extra["cpu_ms_per_order"] = cpu
        fixed.saga.note += f" (loop {loop_speed:g} M iterations/s before it)"
        print(f"CPU ms per order at {options.rate:g}/s (loop {loop_speed:g} M/s before it):", cpu)
    finally:
        await db.close()
    return [*rows, fixed.post, fixed.saga]


def soak(
    platform: BenchPlatform, seeded: Catalog, options: argparse.Namespace
) -> dict[str, tuple[int, int, float]]:
    """Orders at ``--soak-rate`` and catalog reads at 5x that, for ``--soak-seconds``; RSS
    sampled after a tenth of the soak (warm caches) and at its end."""
    seconds = options.soak_seconds
    specs = [
        {
            "kind": "orders",
            "base": platform.gateway,
            "tokens": seeded.customer_tokens,
            "skus": seeded.skus,
            "rate": options.soak_rate,
            "seconds": seconds,
            "max_in_flight": 64,
        },
        {
            "kind": "get",
            "urls": catalog.product_urls(platform.gateway, seeded.skus),
            "rate": options.soak_rate * 5,
            "seconds": seconds,
            "max_in_flight": 64,
        },
    ]
    threads = [threading.Thread(target=run_load, args=(spec,)) for spec in specs]
    for thread in threads:
        thread.start()
    time.sleep(max(5.0, seconds / 10))
    pids = platform.pids()
    first = memory.sample(pids)
    for thread in threads:
        thread.join()
    last = memory.sample(pids)
    growth = memory.growth(first, last)
    return {name: (first[name], last[name], growth[name]) for name in growth}


def targets(
    rows: list[Figures],
    soaked: dict[str, tuple[int, int, float]],
    rate: float,
    *,
    searched: bool = True,
) -> list[report.Target]:
    """Each target whose scenario ran, met or not. The sustained rate is the search's alone
    (``searched``: it ran): a saturation burst's confirmations, worked off from a backlog,
    are not a rate the saga keeps pace with."""
    by = {r.scenario: r for r in rows}
    found: list[report.Target] = []
    saga = by.get("placed→confirmed (sustained)")
    if saga or (searched and "placed→confirmed (saturation)" in by):
        found.append(
            report.Target(
                "confirmed orders/s sustained",
                f"≥ {CONFIRMED_PER_SECOND:g}/s",
                f"{saga.rate:,.0f}/s" if saga else "no rate kept pace with",
                saga is not None and saga.rate >= CONFIRMED_PER_SECOND,
            )
        )
    post, fixed = by.get(f"POST /orders ({rate:g}/s)"), by.get(f"placed→confirmed ({rate:g}/s)")
    if post and fixed:
        found.append(
            report.Target(
                f"p99 POST /orders at {rate:g}/s",
                f"≤ {POST_P99_MS:g} ms",
                f"{post.p99:.1f} ms",
                post.p99 <= POST_P99_MS,
            )
        )
        found.append(
            report.Target(
                f"p99 placed→confirmed at {rate:g}/s",
                f"≤ {SAGA_P99_MS:g} ms",
                f"{fixed.p99:.1f} ms",
                fixed.p99 <= SAGA_P99_MS,
            )
        )
    nginx, gateway = by.get("catalog: nginx → inventory"), by.get("catalog: gateway anonymous")
    if nginx and gateway:
        share = gateway.rate / nginx.rate
        found.append(
            report.Target(
                "catalog via gateway vs nginx",
                f"≥ {GATEWAY_SHARE_OF_NGINX:.0%}",
                f"{share:.0%} ({gateway.rate:,.0f} vs {nginx.rate:,.0f} req/s)",
                share >= GATEWAY_SHARE_OF_NGINX,
            )
        )
    on = by.get("catalog cache on: gateway anonymous")
    off = by.get("catalog cache off: gateway anonymous")
    if on and off:
        cpu_on, cpu_off = (r.extra["postgres_cpu_ms_per_read"] for r in (on, off))
        found.append(
            report.Target(
                "catalog cache: Postgres CPU per read",
                f"≤ {CACHE_POSTGRES_CPU_SHARE:.0%} of the cache off",
                f"{cpu_on:.4f} vs {cpu_off:.4f} ms ({cpu_on / cpu_off:.0%})"
                if cpu_off
                else f"{cpu_on:.4f} vs {cpu_off:.4f} ms",
                cpu_off > 0 and cpu_on <= CACHE_POSTGRES_CPU_SHARE * cpu_off,
            )
        )
        found.append(
            report.Target(
                "catalog cache: req/s",
                "not lower than the cache off",
                f"{on.rate:,.0f} vs {off.rate:,.0f} req/s",
                on.rate >= off.rate,
            )
        )
    if soaked:
        worst = max(soaked.items(), key=lambda item: item[1][2])
        found.append(
            report.Target(
                "memory growth over the soak",
                f"≤ {MEMORY_GROWTH:.0%} per process",
                f"worst {worst[0]} {worst[1][2]:+.1%}",
                worst[1][2] <= MEMORY_GROWTH,
            )
        )
    return found


def main() -> None:
    options = _options()
    only = set(filter(None, options.only.split(","))) or {
        "pgbench",
        "catalog",
        "catalog-cache",
        "orders",
        "journey",
        "soak",
    }
    result = report.Report(machine=machine.describe(), load_before=machine.load_average())
    print(f"the cores' speed: a Python loop at {result.machine['python_loop']} M iterations/s")
    result.command = (
        "make bench" if len(sys.argv) == 1 else "python -m bench.shop " + " ".join(sys.argv[1:])
    )
    if "pgbench" in only:
        tps = references.pgbench_reservations(clients=8, seconds=options.pgbench_seconds)
        result.rows.append(
            Figures("pgbench: reservation transaction", tps, "tps", note="8 clients")
        )
    if options.tracing is not None:
        result.notes.append(
            f"Tracing on: parent-based sampling at {options.tracing:g}, every process exporting "
            "OTLP/HTTP to a local sink (docs/benchmarks.md, Tracing cost)."
        )
    with traced(options.tracing) as overrides, running_platform(overrides) as platform:
        seeded = asyncio.run(seed(platform, customers=options.customers))
        if "catalog" in only:
            result.rows += catalog_rows(platform, seeded, options)
        if "catalog-cache" in only and options.catalog_cache_rounds:
            cached = asyncio.run(
                catalog_cache.cache_rows(
                    platform,
                    catalog_cache.read_urls(platform.gateway, seeded.skus),
                    rounds=options.catalog_cache_rounds,
                    connections=options.catalog_connections,
                    seconds=options.seconds,
                )
            )
            result.rows += cached
            note = catalog_cache.cpu_note(cached)
            if note:
                result.notes.append(note)
        if "orders" in only:
            result.rows += asyncio.run(order_rows(platform, seeded, options))
        if "journey" in only:
            result.rows += journey.storefront_journey(
                platform.gateway,
                tokens=seeded.customer_tokens,
                skus=seeded.skus,
                users=options.users,
                seconds=options.journey_seconds,
            )
        if "soak" in only:
            result.memory = soak(platform, seeded, options)
            result.notes.append(
                f"Soak: {options.soak_seconds:g} s at {options.soak_rate:g} orders/s and "
                f"{options.soak_rate * 5:g} catalog reads/s through the gateway; memory "
                "compared between a tenth of the way in and the end."
            )
        # Other engineers' fault tests stop the shared broker now and then: say so.
        disrupted = sum(
            process.log_text().count("CONNECTION_FORCED") for process in platform.processes.values()
        )
        if disrupted:
            result.notes.append(
                f"RabbitMQ closed the platform's connections {disrupted} times during this run "
                "(another suite's fault test stopping the shared broker): figures of the "
                "scenarios it overlapped are pessimistic."
            )
    if not references.nginx_available():
        result.notes.append("nginx is not installed: no proxy reference in this run.")
    result.load_after = machine.load_average()
    result.machine["python_loop_after"] = f"{machine.python_speed() / 1e6:.1f}"
    result.targets = targets(
        result.rows, result.memory, options.rate, searched=options.sustain_probes > 0
    )
    print(report.summary(result))
    if not options.no_write:
        print(f"\nreport: {report.write(result)}")


if __name__ == "__main__":
    main()
