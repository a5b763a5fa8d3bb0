"""Reservations through the saga's production path (``stock.runs``, one delivery per
transaction here), against the real database, under real concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.catalog.schemas import MoneyIn, ProductCreate, ProductUpdate
from inventory.catalog.service import create_product, update_product
from inventory.config import InventorySettings
from inventory.events import OutboxEvent
from inventory.stock.models import Reservation, StockItem, StockMovement
from inventory.stock.rules import FailureReason
from inventory.stock.runs import Cancel, Commit, OrderLine, Reserve, Step, apply_steps
from inventory.sweeper import sweep_once
from shared.contracts import Money
from shared.contracts.orders import OrderCreated
from shared.contracts.orders import OrderLine as EventLine
from shared.messaging import Envelope

TTL = timedelta(minutes=15)
Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Outcome:
    """What a creation's delivery led to, read from the events it caused: ``reserved``
    False with no reason means a repeat (no event)."""

    reserved: bool
    reason: FailureReason | None = None
    skus: tuple[str, ...] = ()


def cause(order_id: uuid.UUID) -> Envelope:
    """A delivery of the order saga, as the cause of what a step emits."""
    line = EventLine(sku="x", quantity=1, unit_price=Money(amount=1, currency="USD"))
    created = OrderCreated(
        order_id=order_id,
        user_id=uuid.uuid4(),
        items=[line],
        total=Money(amount=1, currency="USD"),
    )
    return Envelope.new(created)


async def new_product(
    sessionmaker: Sessions,
    settings: InventorySettings,
    sku: str,
    stock: int,
    reorder_point: int = 0,
) -> None:
    data = ProductCreate(
        sku=sku,
        name=sku,
        price=MoneyIn(amount=100, currency="USD"),
        initial_stock=stock,
        reorder_point=reorder_point,
    )
    async with sessionmaker() as session:
        await create_product(session=session, settings=settings, data=data, actor="test")


async def apply(sessionmaker: Sessions, *steps: Step) -> None:
    """A run of deliveries, in one transaction, as the reservations consumer applies it."""
    async with sessionmaker() as session, session.begin():
        await apply_steps(session, steps=steps, ttl=TTL)


async def caused_by(sessionmaker: Sessions, event: Envelope) -> list[dict[str, Any]]:
    """The envelopes written to the outbox in answer to ``event``."""
    async with sessionmaker() as session:
        bodies = await session.scalars(
            select(OutboxEvent.body).where(OutboxEvent.body["causation_id"].astext == str(event.id))
        )
        return list(bodies)


async def reserve(
    sessionmaker: Sessions, lines: list[OrderLine], order_id: uuid.UUID | None = None
) -> Outcome:
    order_id = order_id or uuid.uuid4()
    created = cause(order_id)
    await apply(sessionmaker, Reserve(created, order_id, lines))
    for body in await caused_by(sessionmaker, created):
        if body["type"] == "inventory.stock_reserved":
            return Outcome(True, skus=tuple(item["sku"] for item in body["data"]["items"]))
        if body["type"] == "inventory.stock_reservation_failed":
            failure = body["data"]
            return Outcome(False, FailureReason(failure["reason"]), tuple(failure["skus"]))
    return Outcome(reserved=False)


async def confirm(sessionmaker: Sessions, order_id: uuid.UUID) -> None:
    await apply(sessionmaker, Commit(cause(order_id), order_id))


async def cancel(sessionmaker: Sessions, order_id: uuid.UUID) -> None:
    await apply(sessionmaker, Cancel(cause(order_id), order_id))


async def stock(sessionmaker: Sessions, sku: str) -> tuple[int, int]:
    async with sessionmaker() as session:
        item = (await session.execute(select(StockItem).where(StockItem.sku == sku))).scalar_one()
        return item.on_hand, item.reserved


async def alerted(sessionmaker: Sessions, sku: str) -> bool:
    async with sessionmaker() as session:
        flag = await session.scalar(select(StockItem.low_stock_alerted).where(StockItem.sku == sku))
        assert flag is not None
        return flag


async def movements(sessionmaker: Sessions, order_id: uuid.UUID) -> list[str]:
    async with sessionmaker() as session:
        kinds = await session.scalars(
            select(StockMovement.kind)
            .where(StockMovement.reference == str(order_id))
            .order_by(StockMovement.id)
        )
        return list(kinds)


async def status(sessionmaker: Sessions, order_id: uuid.UUID) -> str | None:
    async with sessionmaker() as session:
        return await session.scalar(
            select(Reservation.status).where(Reservation.order_id == order_id)
        )


async def test_last_unit_is_sold_once_under_60_concurrent_orders(
    sessionmaker: Sessions,
    settings: InventorySettings,
    sku: str,
    outbox_events: Callable[..., Any],
) -> None:
    await new_product(sessionmaker, settings, sku, stock=10)
    order_ids = [uuid.uuid4() for _ in range(60)]
    outcomes = await asyncio.gather(
        *(reserve(sessionmaker, [OrderLine(sku, 1)], order_id) for order_id in order_ids)
    )
    assert sum(outcome.reserved for outcome in outcomes) == 10
    assert [o.reason for o in outcomes if not o.reserved] == [FailureReason.OUT_OF_STOCK] * 50
    assert await stock(sessionmaker, sku) == (10, 10)

    mine = set(map(str, order_ids))
    reserved = await outbox_events("inventory.stock_reserved", lambda d: d["order_id"] in mine)
    failed = await outbox_events(
        "inventory.stock_reservation_failed", lambda d: d["order_id"] in mine
    )
    assert len(reserved) == 10
    assert len(failed) == 50
    assert {f["reason"] for f in failed} == {"out_of_stock"}
    assert all(f["skus"] == [sku] for f in failed)


async def test_multi_line_orders_in_opposite_sku_orders_never_deadlock_or_oversell(
    sessionmaker: Sessions, settings: InventorySettings, make_sku: Callable[[], str]
) -> None:
    first, second = make_sku(), make_sku()
    await new_product(sessionmaker, settings, first, stock=10)
    await new_product(sessionmaker, settings, second, stock=10)
    forwards = [OrderLine(first, 1), OrderLine(second, 1)]
    backwards = list(reversed(forwards))
    outcomes = await asyncio.gather(
        *(reserve(sessionmaker, forwards if i % 2 else backwards) for i in range(60))
    )
    assert sum(outcome.reserved for outcome in outcomes) == 10
    assert await stock(sessionmaker, first) == (10, 10)
    assert await stock(sessionmaker, second) == (10, 10)


async def test_an_order_is_reserved_whole_or_not_at_all(
    sessionmaker: Sessions, settings: InventorySettings, make_sku: Callable[[], str]
) -> None:
    plenty, scarce = make_sku(), make_sku()
    await new_product(sessionmaker, settings, plenty, stock=10)
    await new_product(sessionmaker, settings, scarce, stock=1)
    outcome = await reserve(sessionmaker, [OrderLine(plenty, 3), OrderLine(scarce, 2)])
    assert outcome == Outcome(False, FailureReason.OUT_OF_STOCK, (scarce,))
    assert await stock(sessionmaker, plenty) == (10, 0)
    assert await stock(sessionmaker, scarce) == (1, 0)


async def test_repeated_skus_in_one_order_are_reserved_as_their_sum(
    sessionmaker: Sessions, settings: InventorySettings, sku: str
) -> None:
    await new_product(sessionmaker, settings, sku, stock=3)
    refused = await reserve(sessionmaker, [OrderLine(sku, 2), OrderLine(sku, 2)])
    assert refused.reason is FailureReason.OUT_OF_STOCK
    assert (await reserve(sessionmaker, [OrderLine(sku, 1), OrderLine(sku, 2)])).reserved
    assert await stock(sessionmaker, sku) == (3, 3)


async def test_unknown_and_inactive_skus_are_named_in_the_failure(
    sessionmaker: Sessions,
    settings: InventorySettings,
    make_sku: Callable[[], str],
    outbox_events: Callable[..., Any],
) -> None:
    known, retired, missing = make_sku(), make_sku(), make_sku()
    await new_product(sessionmaker, settings, known, stock=5)
    await new_product(sessionmaker, settings, retired, stock=5)
    async with sessionmaker() as session:
        await update_product(
            session=session,
            settings=settings,
            sku=retired,
            changes=ProductUpdate(active=False),
            actor="test",
        )
    unknown = await reserve(sessionmaker, [OrderLine(known, 1), OrderLine(missing, 1)])
    assert unknown == Outcome(False, FailureReason.UNKNOWN_SKU, (missing,))
    order_id = uuid.uuid4()
    inactive = await reserve(sessionmaker, [OrderLine(known, 1), OrderLine(retired, 1)], order_id)
    assert inactive == Outcome(False, FailureReason.INACTIVE, (retired,))
    assert await stock(sessionmaker, known) == (5, 0)
    events = await outbox_events(
        "inventory.stock_reservation_failed", lambda d: d["order_id"] == str(order_id)
    )
    assert events == [{"order_id": str(order_id), "reason": "inactive", "skus": [retired]}]


async def test_confirmation_commits_and_a_later_cancellation_returns_the_stock(
    sessionmaker: Sessions, settings: InventorySettings, sku: str
) -> None:
    await new_product(sessionmaker, settings, sku, stock=10)
    order_id = uuid.uuid4()
    assert (await reserve(sessionmaker, [OrderLine(sku, 4)], order_id)).reserved
    for _ in range(2):  # the second confirmation is late and repeated: no effect
        await confirm(sessionmaker, order_id)
    assert await stock(sessionmaker, sku) == (6, 0)
    assert await status(sessionmaker, order_id) == "committed"

    for _ in range(2):
        await cancel(sessionmaker, order_id)
    assert await stock(sessionmaker, sku) == (10, 0)
    assert await status(sessionmaker, order_id) == "returned"
    async with sessionmaker() as session:
        kinds = (
            await session.scalars(
                select(StockMovement.kind)
                .where(StockMovement.reference == str(order_id))
                .order_by(StockMovement.id)
            )
        ).all()
    assert kinds == ["reservation", "commit", "return"]


async def test_cancellation_releases_a_live_reservation_once(
    sessionmaker: Sessions, settings: InventorySettings, sku: str
) -> None:
    await new_product(sessionmaker, settings, sku, stock=5)
    order_id = uuid.uuid4()
    await reserve(sessionmaker, [OrderLine(sku, 5)], order_id)
    for _ in range(3):
        await cancel(sessionmaker, order_id)
        await confirm(sessionmaker, order_id)  # too late: ignored
    assert await stock(sessionmaker, sku) == (5, 0)
    assert await status(sessionmaker, order_id) == "released"


async def test_a_cancellation_overtaking_its_creation_leaves_nothing_reserved(
    sessionmaker: Sessions, settings: InventorySettings, sku: str
) -> None:
    await new_product(sessionmaker, settings, sku, stock=5)
    order_id = uuid.uuid4()
    await cancel(sessionmaker, order_id)
    late = await reserve(sessionmaker, [OrderLine(sku, 1)], order_id)
    assert late == Outcome(reserved=False)
    assert await stock(sessionmaker, sku) == (5, 0)
    assert await status(sessionmaker, order_id) == "cancelled"


async def test_a_cancellation_racing_its_creation_leaves_the_stock_as_it_was(
    sessionmaker: Sessions, settings: InventorySettings, sku: str
) -> None:
    await new_product(sessionmaker, settings, sku, stock=20)
    order_ids = [uuid.uuid4() for _ in range(10)]

    async def create(order_id: uuid.UUID) -> None:
        await reserve(sessionmaker, [OrderLine(sku, 2)], order_id)

    async def cancel_it(order_id: uuid.UUID) -> None:
        await cancel(sessionmaker, order_id)

    await asyncio.gather(*(f(o) for o in order_ids for f in (create, cancel_it)))
    # The reservation's key decides: a tombstone first and the creation reserves nothing; a
    # reservation first and the cancellation releases it.
    assert await stock(sessionmaker, sku) == (20, 0)
    for order_id in order_ids:
        ledger = await movements(sessionmaker, order_id)
        if await status(sessionmaker, order_id) == "cancelled":
            assert ledger == []
        else:
            assert await status(sessionmaker, order_id) == "released"
            assert ledger == ["reservation", "release"]


async def test_a_repeated_creation_reserves_once(
    sessionmaker: Sessions, settings: InventorySettings, sku: str
) -> None:
    await new_product(sessionmaker, settings, sku, stock=5)
    order_id = uuid.uuid4()
    outcomes = await asyncio.gather(
        *(reserve(sessionmaker, [OrderLine(sku, 2)], order_id) for _ in range(5))
    )
    assert sum(o.reserved for o in outcomes) == 1
    assert await stock(sessionmaker, sku) == (5, 2)


@pytest.mark.parametrize("batch_size", [1, 3, 100])
async def test_two_concurrent_sweepers_expire_each_reservation_exactly_once(
    sessionmaker: Sessions,
    settings: InventorySettings,
    sku: str,
    outbox_events: Callable[..., Any],
    batch_size: int,
) -> None:
    await new_product(sessionmaker, settings, sku, stock=20)
    order_ids = [uuid.uuid4() for _ in range(12)]
    for order_id in order_ids:
        await reserve(sessionmaker, [OrderLine(sku, 1)], order_id)
    live = uuid.uuid4()  # not due: must survive the sweep
    await reserve(sessionmaker, [OrderLine(sku, 1)], live)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Reservation)
            .where(Reservation.order_id.in_(order_ids))
            .values(expires_at=Reservation.created_at - timedelta(seconds=1))
        )

    sweeping = settings.model_copy(update={"sweeper_batch_size": batch_size})
    released = await asyncio.gather(
        sweep_once(sessionmaker=sessionmaker, settings=sweeping),
        sweep_once(sessionmaker=sessionmaker, settings=sweeping),
    )
    # Other tests' due reservations (none are left due) cannot inflate the count.
    assert sum(released) == 12
    assert await stock(sessionmaker, sku) == (20, 1)
    assert {await status(sessionmaker, order_id) for order_id in order_ids} == {"expired"}
    assert await status(sessionmaker, live) == "reserved"
    mine = set(map(str, order_ids))
    expired = await outbox_events("inventory.reservation_expired", lambda d: d["order_id"] in mine)
    assert sorted(e["order_id"] for e in expired) == sorted(mine)

    # The order service then cancels: nothing more is released.
    await cancel(sessionmaker, order_ids[0])
    assert await stock(sessionmaker, sku) == (20, 1)


async def test_reservations_raise_the_low_stock_alarm_once_per_crossing(
    sessionmaker: Sessions,
    settings: InventorySettings,
    make_sku: Callable[[], str],
    outbox_events: Callable[..., Any],
) -> None:
    sku, calm = make_sku(), make_sku()
    await new_product(sessionmaker, settings, sku, stock=10, reorder_point=5)
    await new_product(sessionmaker, settings, calm, stock=10, reorder_point=5)
    first, second, third, fourth = (uuid.uuid4() for _ in range(4))
    assert (await reserve(sessionmaker, [OrderLine(sku, 4), OrderLine(calm, 1)], first)).reserved
    assert not await alerted(sessionmaker, sku)
    await reserve(sessionmaker, [OrderLine(calm, 1), OrderLine(sku, 2)], second)  # 4 left: low
    assert await alerted(sessionmaker, sku)
    await reserve(sessionmaker, [OrderLine(sku, 1)], third)  # 3 left: already said
    for order_id in (second, third):  # 6 left: re-armed, silently
        await cancel(sessionmaker, order_id)
    assert not await alerted(sessionmaker, sku)
    await reserve(sessionmaker, [OrderLine(sku, 5)], fourth)  # 1 left: low again
    await confirm(sessionmaker, fourth)  # available unchanged
    assert await alerted(sessionmaker, sku)
    assert await stock(sessionmaker, sku) == (5, 4)
    await cancel(sessionmaker, fourth)  # returned: 6 left, re-armed
    assert not await alerted(sessionmaker, sku)
    assert await stock(sessionmaker, sku) == (10, 4)

    low = await outbox_events("inventory.stock_low", lambda d: d["sku"] in {sku, calm})
    assert low == [
        {"sku": sku, "available": 4, "reorder_point": 5},
        {"sku": sku, "available": 1, "reorder_point": 5},
    ]
    assert not await alerted(sessionmaker, calm)


async def test_a_confirmation_racing_a_cancellation_moves_the_stock_once(
    sessionmaker: Sessions, settings: InventorySettings, make_sku: Callable[[], str]
) -> None:
    first, second = make_sku(), make_sku()
    await new_product(sessionmaker, settings, first, stock=20)
    await new_product(sessionmaker, settings, second, stock=20)
    order_ids = [uuid.uuid4() for _ in range(10)]
    for i, order_id in enumerate(order_ids):
        lines = [OrderLine(first, 2), OrderLine(second, 1)]
        assert (await reserve(sessionmaker, lines if i % 2 else lines[::-1], order_id)).reserved

    await asyncio.gather(*(f(sessionmaker, o) for o in order_ids for f in (confirm, cancel)))
    # Whichever came first, the other saw its status: nothing is left reserved or lost.
    assert await stock(sessionmaker, first) == (20, 0)
    assert await stock(sessionmaker, second) == (20, 0)
    for order_id in order_ids:
        ledger = await movements(sessionmaker, order_id)
        if await status(sessionmaker, order_id) == "released":
            assert sorted(ledger) == ["release", "release", "reservation", "reservation"]
        else:
            assert await status(sessionmaker, order_id) == "returned"
            assert sorted(ledger) == ["commit"] * 2 + ["reservation"] * 2 + ["return"] * 2
