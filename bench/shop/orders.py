"""Order placement through the gateway: POST latency, then the saga's, from the histories.

Placed → confirmed is read from each order's ``status_history`` (``pending`` at, then
``confirmed`` at, both stamped by the orders service's clock). Confirmed orders per second
is the number confirmed over the span from the first placement to the last confirmation,
so a backlog that the saga works off after the load stops counts against it: it is the rate
the whole pipeline sustains, not the rate POSTs were accepted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from bench.shop.runner import run_load
from bench.shop.stats import Figures, failures_note
from tests.harness.storefront import IN_FLIGHT

SETTLE_SECONDS = 300.0  # only stops a hung saga; the figures say how many settled

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


async def settle(db: asyncpg.Connection, ids: list[str]) -> None:
    """Wait (bounded) until none of the orders ``ids`` is still in flight."""
    try:
        async with asyncio.timeout(SETTLE_SECONDS):
            while await db.fetchval(  # noqa: ASYNC110 (polling another process's database)
                "SELECT count(*) FROM orders.orders "
                "WHERE id = ANY($1::uuid[]) AND status::text = ANY($2::text[])",
                ids,
                list(IN_FLIGHT),
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
    span = (
        (max(c for _, c in confirmed) - min(r["placed"] for r in rows)).total_seconds()
        if confirmed
        else 0.0
    )
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
        len(confirmed) / span if span else 0.0,
        "confirmed/s",
        saga_ms,
        errors=len(ids) - len(confirmed),
        note=f"{len(confirmed)}/{len(ids)} confirmed",
        extra={"orders": len(ids)},
    )
    return OrderFigures(post, saga)
