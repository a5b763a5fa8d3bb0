"""Where an order's placed → confirmed time goes, hop by hop, at a fixed offered rate.

``python -m bench.shop.hops [--rate 125] [--seconds 15] [--warm-up-orders N]
[--after-saturation SECONDS] [--tracing RATIO] [--start-when-told]``

Starts the platform as ``bench.shop`` does, places orders through the gateway at the offered
rate (optionally after a warm-up, as ``make bench`` warms up before its sustained rate's
search, and after a closed-loop burst, as ``make bench`` runs its fixed rate after its
saturation run), then reads each order's trail from the databases: when each saga event was
committed to its producer's outbox and marked sent by the relay (after the broker's
confirm), and when its consumer's transaction began (the inbox key's time). A hop "relay"
is commit → marked sent; a hop "consume" is marked sent → the consumer's transaction, so
the payments hop includes its provider call. Timestamps are each transaction's start
(``now()``), all from the one Postgres clock. It also prints the CPU each platform process and
the platform's own Postgres backends spent per order while the orders were placed and settled
(``/proc``): the figure ``bench.shop.paired`` compares between two builds run at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from bench.shop import memory, orders
from bench.shop.runner import run_load
from bench.shop.seed import reader, seed
from bench.shop.stack import running_platform
from bench.shop.stats import percentile

READY = "ready to start the load"
WARM_UP_RATE = 100.0  # bench.shop.orders.WARM_UP_RATE (see the warm-up below)

# The saga's happy path, in order: (the event's type, the schema of its producer).
TRAIL = [
    ("orders.order_created", "orders"),
    ("inventory.stock_reserved", "inventory"),
    ("orders.payment_requested", "orders"),
    ("payments.payment_succeeded", "payments"),
]
HOPS = [
    "orders relays order_created",
    "inventory consumes it",
    "inventory relays stock_reserved",
    "orders consumes it",
    "orders relays payment_requested",
    "payments consumes it (its provider call included)",
    "payments relays payment_succeeded",
    "orders consumes it",
    "orders records confirmed",
]


@dataclass(frozen=True)
class Sent:
    event_id: uuid.UUID
    sent_at: datetime


async def _trails(db: asyncpg.Connection, order_ids: list[str]) -> list[list[datetime]]:
    """Per order: placed, then per event sent and consumed, then confirmed."""
    history = {
        (str(row["order_id"]), row["status"]): row["at"]
        for row in await db.fetch(
            "SELECT order_id, status::text AS status, min(at) AS at "
            "FROM orders.order_status_history WHERE order_id = ANY($1::uuid[]) "
            "GROUP BY order_id, status",
            order_ids,
        )
    }
    sent: dict[tuple[str, str], Sent] = {}
    consumed: dict[uuid.UUID, datetime] = {}
    for schema in ("orders", "inventory", "payments"):
        for row in await db.fetch(
            f"SELECT id, event_type, body->'data'->>'order_id' AS order_id, sent_at "  # noqa: S608
            f"FROM {schema}.outbox WHERE event_type = ANY($1::text[])",
            [event_type for event_type, producer in TRAIL if producer == schema],
        ):
            sent[(row["event_type"], row["order_id"])] = Sent(row["id"], row["sent_at"])
        for row in await db.fetch(
            f"SELECT event_id, processed_at FROM {schema}.processed_events"  # noqa: S608
        ):
            consumed[row["event_id"]] = row["processed_at"]
    trails = []
    for order_id in order_ids:
        try:
            trail = [history[(order_id, "pending")]]
            for event_type, _ in TRAIL:
                event = sent[(event_type, order_id)]
                trail += [event.sent_at, consumed[event.event_id]]
            trail.append(history[(order_id, "confirmed")])
        except KeyError:
            continue  # not confirmed, or off the happy path
        trails.append(trail)
    return trails


async def _backend_cpu(db: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds so far of each Postgres backend connected to this platform's database."""
    rows = await db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    return {row["pid"]: memory.cpu_seconds(row["pid"]) for row in rows}


def _tracing(ratio: float | None) -> contextlib.AbstractContextManager[dict[str, str]]:
    if ratio is None:
        return contextlib.nullcontext({})
    from bench.shop.tracing import traced  # only where tracing is wanted

    return traced(ratio)


async def measure(options: argparse.Namespace) -> None:
    with _tracing(options.tracing) as overrides, running_platform(overrides) as platform:
        seeded = await seed(platform, customers=16)
        db = await reader(platform)
        try:
            common = {
                "kind": "orders",
                "base": platform.gateway,
                "tokens": seeded.customer_tokens,
                "skus": seeded.skus,
                "max_in_flight": 256,
            }
            if options.warm_up_orders:
                # bench.shop.orders.warm_up and the probe's analyze, written out: a baseline's
                # older checkout runs this script, and its bench.shop.orders has neither.
                seconds = options.warm_up_orders / WARM_UP_RATE
                warm = {**common, "seconds": seconds, "rate": WARM_UP_RATE}
                placed = await asyncio.to_thread(run_load, warm)
                await orders.settle(db, placed["order_ids"])
                await db.execute("VACUUM (ANALYZE)")
                print(f"after a warm-up of {len(placed['order_ids'])} orders")
            if options.after_saturation:
                burst = {**common, "seconds": options.after_saturation, "connections": 32}
                placed = await asyncio.to_thread(run_load, burst)
                await orders.settle(db, placed["order_ids"])
                print(f"after a saturation burst of {len(placed['order_ids'])} orders")
            if options.start_when_told:  # at once with another build (bench.shop.paired)
                print(READY, flush=True)
                start_at = float(await asyncio.to_thread(sys.stdin.readline))
                await asyncio.sleep(max(start_at - time.time(), 0.0))
            spec = {**common, "seconds": options.seconds, "rate": options.rate}
            pids = platform.pids()
            before, backends_before = memory.cpu(pids), await _backend_cpu(db)
            print(f"load started at {time.time():.1f}")
            result = await asyncio.to_thread(run_load, spec)
            await orders.settle(db, result["order_ids"])
            after, backends_after = memory.cpu(pids), await _backend_cpu(db)
            trails = await _trails(db, result["order_ids"])
        finally:
            await db.close()
    count = max(len(result["order_ids"]), 1)
    spent = {name: (after[name] - before[name]) * 1000 / count for name in after}
    spent["postgres"] = (
        sum(used - backends_before.get(pid, 0.0) for pid, used in backends_after.items())
        * 1000
        / count
    )
    cpu = {name: round(ms, 3) for name, ms in spent.items()}
    print(f"CPU ms per order: {cpu} total {sum(spent.values()):.3f}")
    posts = result["latencies_ms"]
    print(f"POST /orders ms: p50 {percentile(posts, 0.5):.1f} p99 {percentile(posts, 0.99):.1f}")
    print(f"{len(trails)} orders confirmed at {options.rate:g}/s offered; ms per hop:")
    print(f"  {'hop':52s} {'p50':>7s} {'p90':>7s} {'p99':>7s}")
    for index, hop in enumerate([*HOPS, "placed → confirmed"]):
        start, end = (index, index + 1) if index < len(HOPS) else (0, -1)
        spans = [(trail[end] - trail[start]).total_seconds() * 1000 for trail in trails]
        figures = [percentile(spans, fraction) for fraction in (0.5, 0.9, 0.99)]
        print(f"  {hop:52s} " + " ".join(f"{value:7.1f}" for value in figures))


def main() -> None:
    parser = argparse.ArgumentParser(description="the saga's latency hop by hop (127.0.0.1)")
    parser.add_argument("--rate", type=float, default=125.0, help="offered orders/s")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--after-saturation", type=float, default=0.0, help="a closed-loop burst first, seconds"
    )
    parser.add_argument(
        "--tracing", type=float, default=None, metavar="RATIO", help="trace, sampling at RATIO"
    )
    parser.add_argument(
        "--warm-up-orders",
        type=int,
        default=0,
        help="orders placed and settled at 100/s, then VACUUM (ANALYZE), before anything else",
    )
    parser.add_argument(
        "--start-when-told",
        action="store_true",
        help=f"once ready, print {READY!r} and start the load at the Unix time read from stdin",
    )
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
