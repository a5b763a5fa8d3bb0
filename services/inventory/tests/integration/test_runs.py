"""A run of saga events applied at once decides and writes what the same events delivered
one at a time (a run of one each) would: the same stock, reservations, ledger and events,
for random mixes of events (with reservations expiring between them, so late confirmations
take stock again or fail)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.config import InventorySettings
from inventory.events import OutboxEvent
from inventory.stock.models import Reservation, StockItem, StockMovement
from inventory.stock.runs import Cancel, Commit, OrderLine, Reserve, Step, apply_steps
from inventory.sweeper import sweep_once
from services.inventory.tests.integration.test_reservations import (
    apply,
    cause,
    new_product,
    stock,
)

TTL = timedelta(minutes=15)
Sessions = async_sessionmaker[AsyncSession]
SKUS, ORDERS, STEPS = 3, 10, 40


@dataclass(frozen=True)
class Expire:
    """Not an event: the order's reservation reaches its deadline and the sweeper runs."""

    order_id: uuid.UUID


Plan = list[Step | Expire]


class World:
    """One copy of the scenario: its own skus and order ids, so two copies never meet."""

    def __init__(self, name: str, make_sku: Callable[[], str]) -> None:
        self.skus = [make_sku() for _ in range(SKUS)]
        self.unknown = make_sku()  # never created: an order naming it is refused
        self.orders = [uuid.uuid4() for _ in range(ORDERS)]
        self.name = name

    def steps(self, plan: Sequence[tuple[str, int, list[tuple[int, int]]]]) -> Plan:
        steps: Plan = []
        for kind, order, lines in plan:
            order_id = self.orders[order]
            if kind == "reserve":
                skus = [self.unknown if i < 0 else self.skus[i] for i, _ in lines]
                order_lines = [OrderLine(sku, q) for sku, (_, q) in zip(skus, lines, strict=True)]
                steps.append(Reserve(cause(order_id), order_id, order_lines))
            elif kind == "commit":
                steps.append(Commit(cause(order_id), order_id))
            elif kind == "expire":
                steps.append(Expire(order_id))
            else:
                steps.append(Cancel(cause(order_id), order_id))
        return steps

    def canonical(self, value: Any) -> str:
        """``value`` with this world's skus and order ids replaced by their positions."""
        text = orjson.dumps(value, default=str).decode()
        for i, sku in enumerate(self.skus):
            text = text.replace(sku, f"sku{i}")
        for i, order_id in enumerate(self.orders):
            text = text.replace(str(order_id), f"order{i}")
        return text.replace(self.unknown, "unknown")

    def canonical_event(self, event: tuple[str, dict[str, Any]]) -> str:
        """An event, canonical; lists in sku order, which differs between worlds, sorted."""
        kind, data = orjson.loads(self.canonical(event))
        for name in ("items", "skus"):
            if name in data:
                data[name] = sorted(data[name], key=orjson.dumps)
        if "expires_at" in data:  # a time of its own in each world
            data["expires_at"] = "deadline"
        return orjson.dumps([kind, data]).decode()

    async def state(self, sessionmaker: Sessions) -> dict[str, Any]:
        references = [str(order_id) for order_id in self.orders]
        async with sessionmaker() as session:
            items = await session.execute(
                select(StockItem.sku, StockItem.on_hand, StockItem.reserved)
                .add_columns(StockItem.low_stock_alerted)
                .where(StockItem.sku.in_(self.skus))
            )
            reservations = await session.execute(
                select(Reservation.order_id, Reservation.status).where(
                    Reservation.order_id.in_(self.orders)
                )
            )
            moves = await session.execute(
                select(
                    StockMovement.sku,
                    StockMovement.kind,
                    StockMovement.on_hand_delta,
                    StockMovement.reserved_delta,
                    StockMovement.reason,
                    StockMovement.reference,
                ).where(StockMovement.reference.in_(references))
            )
            bodies = (await session.scalars(select(OutboxEvent.body))).all()
        mine = [
            (body["type"], body["data"])
            for body in bodies
            if body["data"].get("order_id") in references or body["data"].get("sku") in self.skus
        ]
        return {
            "stock": sorted(self.canonical(list(row)) for row in items),
            "reservations": sorted(self.canonical(list(row)) for row in reservations),
            "movements": Counter(self.canonical(list(row)) for row in moves),
            # One event at most per order and per alarm crossing: compared as a multiset.
            "events": Counter(self.canonical_event(event) for event in mine),
        }


def random_plan(seed: int) -> list[tuple[str, int, list[tuple[int, int]]]]:
    """Creations (repeats included), confirmations and cancellations, in a random order; an
    order's lines are fixed, one in ten names an unknown sku (index -1)."""
    rng = random.Random(seed)
    lines = {
        order: [
            (-1 if rng.random() < 0.1 else rng.randrange(SKUS), rng.randint(1, 3))
            for _ in range(rng.randint(1, 2))
        ]
        for order in range(ORDERS)
    }
    kinds = ["reserve"] * 5 + ["commit"] * 3 + ["cancel"] * 2 + ["expire"] * 3
    plan = []
    for _ in range(STEPS):
        order = rng.randrange(ORDERS)
        plan.append((rng.choice(kinds), order, lines[order]))
    return plan


async def expire(sessionmaker: Sessions, settings: InventorySettings, order_id: uuid.UUID) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Reservation)
            .where(Reservation.order_id == order_id)
            .values(expires_at=Reservation.created_at - timedelta(seconds=1))
        )
    await sweep_once(sessionmaker=sessionmaker, settings=settings)


async def one_by_one(
    sessionmaker: Sessions, settings: InventorySettings, steps: Sequence[Step | Expire]
) -> None:
    for step in steps:
        if isinstance(step, Expire):
            await expire(sessionmaker, settings, step.order_id)
            continue
        await apply(sessionmaker, step)


async def in_runs(
    sessionmaker: Sessions, settings: InventorySettings, steps: Sequence[Step | Expire], seed: int
) -> None:
    """The steps cut into runs of random length, a transaction each, as batches come; an
    expiry ends a run (the sweeper runs between batches)."""
    rng = random.Random(seed)
    start = 0
    while start < len(steps):
        first = steps[start]
        if isinstance(first, Expire):
            await expire(sessionmaker, settings, first.order_id)
            start += 1
            continue
        end = start + rng.randint(1, 12)
        run: list[Step] = []
        for step in steps[start:end]:
            if isinstance(step, Expire):
                break
            run.append(step)
        async with sessionmaker() as session, session.begin():
            await apply_steps(session, steps=run, ttl=TTL)
        start += len(run)


@pytest.mark.parametrize("seed", range(12))
async def test_runs_leave_what_one_event_at_a_time_leaves(
    sessionmaker: Sessions,
    settings: InventorySettings,
    make_sku: Callable[[], str],
    seed: int,
) -> None:
    plan = random_plan(seed)
    alone, batched = World("alone", make_sku), World("batched", make_sku)
    for world in (alone, batched):
        for sku in world.skus:
            # Little stock and a reorder point: refusals and alarms happen.
            await new_product(sessionmaker, settings, sku, stock=6, reorder_point=3)
    await one_by_one(sessionmaker, settings, alone.steps(plan))
    await in_runs(sessionmaker, settings, batched.steps(plan), seed)

    expected, got = await alone.state(sessionmaker), await batched.state(sessionmaker)
    for key in expected:
        assert got[key] == expected[key], key
    assert expected["movements"], "the plan moved no stock: it tests nothing"


async def test_concurrent_runs_over_the_same_skus_never_deadlock_or_oversell(
    sessionmaker: Sessions, settings: InventorySettings, make_sku: Callable[[], str]
) -> None:
    first, second = make_sku(), make_sku()
    for sku in (first, second):
        await new_product(sessionmaker, settings, sku, stock=20)
    forwards = [OrderLine(first, 1), OrderLine(second, 1)]
    backwards = list(reversed(forwards))

    async def run(lines: list[OrderLine]) -> None:
        orders = [uuid.uuid4() for _ in range(3)]
        steps: list[Step] = [Reserve(cause(order), order, lines) for order in orders]
        steps += [Commit(cause(order), order) for order in orders[:1]]
        async with sessionmaker() as session, session.begin():
            await apply_steps(session, steps=steps, ttl=TTL)

    await asyncio.gather(*(run(forwards if i % 2 else backwards) for i in range(12)))
    # 36 orders want one of each and 20 get it; a run's first order, if it got it, is paid.
    for sku in (first, second):
        on_hand, reserved = await stock(sessionmaker, sku)
        committed = 20 - on_hand
        assert 0 < committed <= 12
        assert committed + reserved == 20  # every unit paid for or held, once
