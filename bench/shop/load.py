"""The load generator, run as its own process: ``python -m bench.shop.load < spec.json``.

Reads one JSON spec on stdin, sends HTTP requests to 127.0.0.1 for a bounded time, prints
one JSON result on stdout. Two shapes of load:
- closed loop (``connections`` workers, each sending its next request when the last one
  answered): the saturation rate;
- open loop (``rate`` requests per second on a fixed schedule, whatever the answers): the
  latency at an offered rate, without coordinated omission (latency is counted from the
  scheduled send time). ``max_in_flight`` bounds the requests outstanding.

Specs: ``{"kind": "get", "urls": [...], "headers": [{...}, ...], ...}`` cycles through URLs
and header sets; ``{"kind": "orders", "base": ..., "tokens": [...], "skus": [...], ...}``
places orders, one customer token after another, and returns the ids of the orders placed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import uvloop

ADDRESS = {
    "name": "Bench Buyer",
    "line1": "1 Loopback Lane",
    "city": "Localhost",
    "postal_code": "12700",
    "country": "US",
}

# Sends one request: its answer's status, and the order id when one was placed.
Request = Callable[[aiohttp.ClientSession], Awaitable[tuple[int, str | None]]]


def _get_requests(spec: dict[str, Any]) -> Callable[[], Request]:
    pairs = itertools.cycle(itertools.product(spec["urls"], spec.get("headers") or [{}]))

    def next_request() -> Request:
        url, headers = next(pairs)

        async def send(session: aiohttp.ClientSession) -> tuple[int, str | None]:
            async with session.get(url, headers=headers) as response:
                await response.read()
                return response.status, None

        return send

    return next_request


def _order_requests(spec: dict[str, Any]) -> Callable[[], Request]:
    url = f"{spec['base']}/api/v1/orders"
    tokens = itertools.cycle(spec["tokens"])
    skus = itertools.cycle(spec["skus"])

    def next_request() -> Request:
        headers = {"Authorization": f"Bearer {next(tokens)}", "Idempotency-Key": uuid.uuid4().hex}
        body = json.dumps(
            {
                "items": [{"sku": next(skus), "quantity": 1}],
                "payment": {"token": "tok_visa"},
                "shipping_address": ADDRESS,
            }
        )
        headers["Content-Type"] = "application/json"

        async def send(session: aiohttp.ClientSession) -> tuple[int, str | None]:
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                if response.status != 202:
                    return response.status, None
                order_id: str = json.loads(answer)["id"]
                return response.status, order_id

        return send

    return next_request


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    make = _order_requests(spec) if spec["kind"] == "orders" else _get_requests(spec)
    seconds: float = spec["seconds"]
    warmup: float = spec.get("warmup", 1.0)
    latencies: list[float] = []
    ids: list[str] = []
    errors = 0
    failures: Counter[str] = Counter()  # what the errors were: a status or an exception
    connector = aiohttp.TCPConnector(limit=spec.get("max_in_flight", spec.get("connections", 64)))
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(scheduled: float, record: bool) -> None:
            nonlocal errors
            try:
                status, order_id = await make()(session)
                failure = None if status in (200, 202) else str(status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure, order_id = type(exc).__name__, None
            if not record:
                return
            if failure is None:
                latencies.append((time.perf_counter() - scheduled) * 1000)
                if order_id:
                    ids.append(order_id)
            else:
                errors += 1
                failures[failure] += 1

        async def closed(until: float, record: bool) -> None:
            while time.perf_counter() < until:
                await one(time.perf_counter(), record)

        async def open_loop(rate: float, duration: float, record: bool) -> None:
            start = time.perf_counter()
            tasks: set[asyncio.Task[None]] = set()
            for n in itertools.count():
                scheduled = start + n / rate
                if scheduled >= start + duration:
                    break
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(scheduled, record))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(tasks, timeout=35)

        if spec.get("rate"):
            rate = float(spec["rate"])
            await open_loop(rate, warmup, False)
            started = time.perf_counter()
            await open_loop(rate, seconds, True)
        else:
            connections = int(spec["connections"])
            end_warmup = time.perf_counter() + warmup
            await asyncio.gather(*(closed(end_warmup, False) for _ in range(connections)))
            started = time.perf_counter()
            end = started + seconds
            await asyncio.gather(*(closed(end, True) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return {
        "completed": len(latencies),
        "errors": errors,
        "failures": dict(failures),
        "elapsed": elapsed,
        "latencies_ms": latencies,
        "order_ids": ids,
    }


def main() -> None:
    spec = json.load(sys.stdin)
    json.dump(uvloop.run(run(spec)), sys.stdout)


if __name__ == "__main__":
    main()
