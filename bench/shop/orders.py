"""Order placement through the gateway: POST latency, then the saga's, from the histories.

Placed → confirmed is read from each order's ``status_history`` (``pending`` at, then
``confirmed`` at, both stamped by the orders service's clock). Confirmed orders per second
is the rate of the confirmations themselves, from the first to the last, at most the
orders' own rate of placement (``confirmation_rate``). A backlog worked off after the load
stops spreads them out, so it counts against the figure; a run that keeps pace confirms at
the rate it was offered, and reads that. (Counted from the first placement instead, as
until 12-05, a run that kept pace also paid one placed → confirmed at its end: 254/s
offered and kept read 249.6/s.)

That figure, from a closed loop, is the saga's rate under overload: POSTs are accepted
faster than the saga confirms them and the backlog grows through the run. The deeper the
backlog, the larger each consumer's batches and the less CPU an order costs, while the extra
POSTs take cores from the saga, so it can err either way from what a steady load gets (at
180/s offered on a slow hour, the closed loop having shown 183/s, the wait grew to 4 s and
stayed there). The rate the shop *sustains* is the highest fixed offered rate the saga keeps
pace with (``find_sustained_rate``): every order confirmed, and p99 placed → confirmed
within ``KEEPS_PACE_P99_MS``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from bench.shop import machine, memory
from bench.shop.runner import run_load
from bench.shop.stats import Figures, failures_note, percentile
from tests.harness.storefront import IN_FLIGHT

SETTLE_SECONDS = 300.0  # only stops a hung saga; the figures say how many settled
KEEPS_PACE_P99_MS = 1000.0
CLOSEST_STEP = 0.03  # the search stops once a kept and a missed rate are this close

HISTORY_SQL = """
SELECT min(at) FILTER (WHERE status::text = 'pending') AS placed,
       min(at) FILTER (WHERE status::text = 'confirmed') AS confirmed
FROM orders.order_status_history
WHERE order_id = ANY($1::uuid[])
GROUP BY order_id
"""


@dataclass(frozen=True)
class OrderFigures:
    post: Figures
    saga: Figures


# Orders still in flight, and stock still held for orders that are not: the saga's last
# event (``order_confirmed``, or ``order_cancelled``) not yet taken by inventory.
UNSETTLED_SQL = """
SELECT (SELECT count(*) FROM orders.orders
        WHERE id = ANY($1::uuid[]) AND status::text = ANY($2::text[]))
     + (SELECT count(*) FROM inventory.reservations
        WHERE order_id = ANY($1::uuid[]) AND status::text = 'reserved')
"""


async def settle(db: asyncpg.Connection, ids: list[str]) -> None:
    """Wait (bounded) until every one of the orders ``ids`` has ended and inventory has
    taken its last event: the next run starts on a quiet platform, and the CPU measured
    for these orders includes all of their work."""
    try:
        async with asyncio.timeout(SETTLE_SECONDS):
            while await db.fetchval(  # noqa: ASYNC110 (polling another process's database)
                UNSETTLED_SQL, ids, list(IN_FLIGHT)
            ):
                await asyncio.sleep(0.25)
    except TimeoutError:
        pass


async def place_orders(
    db: asyncpg.Connection,
    label: str,
    *,
    base: str,
    tokens: list[str],
    skus: list[str],
    seconds: float,
    rate: float | None = None,
    connections: int = 32,
) -> OrderFigures:
    """Place orders for ``seconds`` (at ``rate``/s, or closed-loop on ``connections``)."""
    spec = {
        "kind": "orders",
        "base": base,
        "tokens": tokens,
        "skus": skus,
        "seconds": seconds,
        "rate": rate,
        "connections": connections,
        "max_in_flight": 256,
    }
    result = await asyncio.to_thread(run_load, spec)
    ids: list[str] = result["order_ids"]
    await settle(db, ids)
    rows = await db.fetch(HISTORY_SQL, ids) if ids else []
    confirmed = [(r["placed"], r["confirmed"]) for r in rows if r["confirmed"] is not None]
    saga_ms = [(done - placed).total_seconds() * 1000 for placed, done in confirmed]
    shape = f"{rate:g}/s offered" if rate else f"saturation, {connections} connections"
    post = Figures.of(
        f"POST /orders ({label})",
        result["completed"] / result["elapsed"],
        "req/s",
        result["latencies_ms"],
        errors=result["errors"],
        note=shape + failures_note(result),
    )
    saga = Figures.of(
        f"placed→confirmed ({label})",
        confirmation_rate(confirmed),
        "confirmed/s",
        saga_ms,
        errors=len(ids) - len(confirmed),
        note=f"{len(confirmed)}/{len(ids)} confirmed",
        extra={"orders": len(ids), "quarters_p50_ms": quarter_medians(confirmed)},
    )
    return OrderFigures(post, saga)


# The warm-up's offered rate: well below what the shop sustains on a slow hour, so that it
# settles quickly.
WARM_UP_RATE = 100.0


async def warm_up(db: asyncpg.Connection, *, count: int, **common: Any) -> int:
    """Place about ``count`` orders at ``WARM_UP_RATE`` and let them settle, measuring
    nothing; the number placed.

    The search's first probe would otherwise run on the nearly empty tables of a new
    database, right after a ``VACUUM (ANALYZE)`` of them. Postgres keeps each prepared
    statement's generic plan until its tables are next analyzed, and a plan made for
    tables of a few rows looks orders up by sequential scan (a hash join against the whole
    table, even the relay's claim), whose cost then grows with every order the probe adds.
    A shop in service has history, and autovacuum analyzes its tables as they grow; the
    warm-up gives the tables some before the probes' analyze, so the first probe measures
    the plans the later ones meet (bench/CHANGES.md)."""
    figures = await place_orders(
        db, "warm-up", seconds=count / WARM_UP_RATE, rate=WARM_UP_RATE, **common
    )
    placed: int = figures.saga.extra["orders"]
    return placed


def confirmation_rate(confirmed: list[tuple[datetime, datetime]]) -> float:
    """Confirmations per second from the first to the last, but never more than those
    orders were placed per second (module doc); 0 for fewer than two. ``confirmed`` holds
    (placed at, confirmed at) pairs.

    The cap: a run's first confirmations wait for the first batches while its last ones
    come quickly, so over a run that keeps pace the confirmations' own span can come out a
    little shorter than the placements' (99/s read for 98/s offered): the saga cannot have
    confirmed faster than it was given orders."""
    if len(confirmed) < 2:
        return 0.0
    return min(_rate([placed for placed, _ in confirmed]), _rate([done for _, done in confirmed]))


def _rate(times: list[datetime]) -> float:
    span = (max(times) - min(times)).total_seconds()
    return (len(times) - 1) / span if span > 0 else 0.0


def quarter_medians(confirmed: list[tuple[datetime, datetime]]) -> list[float]:
    """Median placed → confirmed (ms) of each quarter of the orders, in placement order."""
    ordered = sorted(confirmed)
    size = len(ordered) // 4
    if not size:
        return []
    quarters = [ordered[i * size : (i + 1) * size] for i in range(4)]
    return [
        percentile([(done - placed).total_seconds() * 1000 for placed, done in quarter], 0.5)
        for quarter in quarters
    ]


def keeps_pace(figures: OrderFigures) -> bool:
    """Every order accepted and confirmed, and p99 placed → confirmed within the bound."""
    post, saga = figures.post, figures.saga
    return post.errors == 0 and saga.errors == 0 and saga.p99 <= KEEPS_PACE_P99_MS


@dataclass(frozen=True)
class Probe:
    """One fixed-rate run of the search: what it was offered, measured and spent."""

    rate: float
    figures: OrderFigures
    kept_pace: bool
    cpu_ms_per_order: dict[str, float]
    loop_speed: float | None = None
    """The cores' speed just before the probe (``machine.python_speed``, millions of
    iterations per second): a run's probes can meet different machines minutes apart."""


def next_rate(kept: float | None, missed: float | None, *, step: float = 1.15) -> float | None:
    """The next offered rate to try between the highest kept and the lowest missed one
    (None once they are close): up or down by ``step`` until one of each is known, then
    halfway."""
    if kept is not None and missed is not None:
        if missed - kept <= CLOSEST_STEP * kept:
            return None
        return round((kept + missed) / 2)
    if kept is not None:
        return round(kept * step)
    assert missed is not None, "a first rate is given, not searched"
    return round(missed / step)


async def place_orders_measured(
    db: asyncpg.Connection, label: str, *, pids: dict[str, int], **kwargs: Any
) -> tuple[OrderFigures, dict[str, float]]:
    """``place_orders``, and the CPU each process spent per order placed, from before the
    first POST until the last order settled (``/proc``; the shared servers' too: their share
    of the two cores bounds the saga as much as ours)."""
    before, servers_before = memory.cpu(pids), memory.server_cpu()
    figures = await place_orders(db, label, **kwargs)
    now = memory.cpu(pids)
    spent = {name: now[name] - before[name] for name in now}
    spent |= memory.server_cpu_since(servers_before)
    placed = max(figures.saga.extra.get("orders", 0), 1)
    return figures, {name: round(seconds * 1000 / placed, 2) for name, seconds in spent.items()}


async def find_sustained_rate(
    db: asyncpg.Connection,
    *,
    first_rate: float,
    probes: int,
    seconds: float,
    pids: dict[str, int],
    **common: Any,
) -> list[Probe]:
    """Offer orders at fixed rates, from ``first_rate`` up or down, then halving the gap,
    for at most ``probes`` runs of ``seconds``; every probe, in the order run, with the
    cores' speed read while the platform is idle just before it."""
    tried: list[Probe] = []
    kept: float | None = None
    missed: float | None = None
    rate: float | None = first_rate
    while rate is not None and len(tried) < probes:
        # Each probe starts on a database as autovacuum would leave it (see order_rows).
        await db.execute("VACUUM (ANALYZE)")
        loop_speed = round(machine.python_speed() / 1e6, 1)
        figures, cpu = await place_orders_measured(
            db, f"{rate:g}/s probe", pids=pids, seconds=seconds, rate=rate, **common
        )
        probe = Probe(rate, figures, keeps_pace(figures), cpu, loop_speed)
        tried.append(probe)
        quarters = [round(q) for q in figures.saga.extra["quarters_p50_ms"]]
        verdict = "kept pace" if probe.kept_pace else "fell behind"
        print(
            f"  sustained? {rate:g}/s offered (loop {loop_speed:g} M/s before it): "
            f"{figures.saga.rate:.0f} confirmed/s, "
            f"p99 {figures.saga.p99:.0f} ms, p50 by quarter {quarters}: {verdict}"
        )
        if probe.kept_pace:
            kept = rate if kept is None else max(kept, rate)
        else:
            missed = rate if missed is None else min(missed, rate)
        rate = next_rate(kept, missed)
    return tried


def sustained_row(tried: list[Probe]) -> Figures | None:
    """The saga's figures at the highest rate it kept pace with, its note naming every
    probe; None if it kept pace with none."""
    kept = [probe for probe in tried if probe.kept_pace]
    if not kept:
        return None
    best = max(kept, key=lambda probe: probe.rate)
    saga = best.figures.saga
    probes = ", ".join(_probe_note(probe) for probe in tried)
    read = any(probe.loop_speed for probe in tried)
    speeds = " (each at the loop's M iterations/s just before it)" if read else ""
    return replace(
        saga,
        scenario="placed→confirmed (sustained)",
        note=(
            f"{best.rate:g}/s offered, the highest kept pace with (all confirmed, p99 ≤ "
            f"{KEEPS_PACE_P99_MS:g} ms); probes {probes}{speeds}"
        ),
        extra={**saga.extra, "cpu_ms_per_order": best.cpu_ms_per_order, "offered": best.rate},
    )


def _probe_note(probe: Probe) -> str:
    verdict = "kept" if probe.kept_pace else "behind"
    speed = f" at {probe.loop_speed:g}" if probe.loop_speed else ""
    return f"{probe.rate:g} {verdict}{speed}"
