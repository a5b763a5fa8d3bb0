"""A confirmation that meets a reservation the sweeper already expired: the stock is taken
again when it is still available, else nothing is committed and ``stock_commit_failed`` says
so. A confirmation is applied as the reservations consumer applies it (``stock.runs``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.config import InventorySettings
from inventory.stock.models import Reservation
from inventory.stock.runs import Commit, OrderLine
from inventory.sweeper import sweep_once
from services.inventory.tests.integration.test_reservations import (
    TTL,
    apply,
    cancel,
    cause,
    confirm,
    movements,
    new_product,
    reserve,
    status,
    stock,
)

Sessions = async_sessionmaker[AsyncSession]


async def expire(
    sessionmaker: Sessions, settings: InventorySettings, *order_ids: uuid.UUID
) -> None:
    """The TTL passes and the sweeper runs before the confirmation arrives."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Reservation)
            .where(Reservation.order_id.in_(order_ids))
            .values(expires_at=Reservation.created_at - timedelta(seconds=1))
        )
    await sweep_once(sessionmaker=sessionmaker, settings=settings)
    for order_id in order_ids:
        assert await status(sessionmaker, order_id) == "expired"


async def test_stock_reserved_says_when_the_reservation_expires(
    sessionmaker: Sessions, settings: InventorySettings, sku: str, outbox_events: Any
) -> None:
    await new_product(sessionmaker, settings, sku, stock=3)
    order_id = uuid.uuid4()
    before = datetime.now(UTC)
    await reserve(sessionmaker, [OrderLine(sku, 1)], order_id)
    [event] = await outbox_events(
        "inventory.stock_reserved", lambda d: d["order_id"] == str(order_id)
    )
    assert event["expires_at"].endswith("Z")  # RFC 3339, UTC
    expires_at = datetime.fromisoformat(event["expires_at"])
    assert before + TTL - timedelta(seconds=5) <= expires_at <= datetime.now(UTC) + TTL


async def test_a_confirmation_after_expiry_takes_the_stock_again_when_it_is_there(
    sessionmaker: Sessions,
    settings: InventorySettings,
    sku: str,
    outbox_events: Any,
) -> None:
    await new_product(sessionmaker, settings, sku, stock=5, reorder_point=3)
    order_id = uuid.uuid4()
    assert (await reserve(sessionmaker, [OrderLine(sku, 2)], order_id)).reserved
    await expire(sessionmaker, settings, order_id)
    assert await stock(sessionmaker, sku) == (5, 0)

    await confirm(sessionmaker, order_id)
    await confirm(sessionmaker, order_id)  # a repeat: committed already, nothing more
    assert await stock(sessionmaker, sku) == (3, 0)
    assert await status(sessionmaker, order_id) == "committed"
    assert sorted(await movements(sessionmaker, order_id)) == ["commit", "release", "reservation"]
    mine = lambda data: data["order_id"] == str(order_id)  # noqa: E731
    assert await outbox_events("inventory.stock_commit_failed", mine) == []
    # Reserved (low), released (re-armed), taken from available again (low again).
    low = await outbox_events("inventory.stock_low", lambda data: data["sku"] == sku)
    assert low == [{"sku": sku, "available": 3, "reorder_point": 3}] * 2

    # Refunded later: the committed quantity comes back once.
    await cancel(sessionmaker, order_id)
    assert await stock(sessionmaker, sku) == (5, 0)


async def test_a_confirmation_after_expiry_whose_stock_was_sold_commits_nothing_and_says_so(
    sessionmaker: Sessions,
    settings: InventorySettings,
    make_sku: Callable[[], str],
    outbox_events: Any,
) -> None:
    scarce, plenty = make_sku(), make_sku()
    await new_product(sessionmaker, settings, scarce, stock=1)
    await new_product(sessionmaker, settings, plenty, stock=10)
    late, other = uuid.uuid4(), uuid.uuid4()
    assert (
        await reserve(sessionmaker, [OrderLine(scarce, 1), OrderLine(plenty, 2)], late)
    ).reserved
    await expire(sessionmaker, settings, late)
    assert (await reserve(sessionmaker, [OrderLine(scarce, 1)], other)).reserved  # sold again

    await confirm(sessionmaker, late)
    assert await status(sessionmaker, late) == "commit_failed"
    assert await stock(sessionmaker, scarce) == (1, 1)  # the other order's, untouched
    assert await stock(sessionmaker, plenty) == (10, 0)  # all or nothing
    failed = await outbox_events(
        "inventory.stock_commit_failed", lambda data: data["order_id"] == str(late)
    )
    assert failed == [{"order_id": str(late), "reason": "stock_unavailable", "skus": [scarce]}]

    # Orders refunds it and cancels: nothing was committed, so nothing comes back; a repeated
    # confirmation cannot take the stock either.
    await cancel(sessionmaker, late)
    await confirm(sessionmaker, late)
    assert await stock(sessionmaker, scarce) == (1, 1)
    assert await stock(sessionmaker, plenty) == (10, 0)
    assert await status(sessionmaker, late) == "commit_failed"
    assert sorted(await movements(sessionmaker, late)) == ["release"] * 2 + ["reservation"] * 2


async def test_a_confirmation_overtaken_by_the_cancellation_of_its_expired_order_takes_nothing(
    sessionmaker: Sessions, settings: InventorySettings, sku: str
) -> None:
    await new_product(sessionmaker, settings, sku, stock=4)
    order_id = uuid.uuid4()
    await reserve(sessionmaker, [OrderLine(sku, 1)], order_id)
    await expire(sessionmaker, settings, order_id)
    await cancel(sessionmaker, order_id)
    await confirm(sessionmaker, order_id)
    assert await stock(sessionmaker, sku) == (4, 0)
    assert await status(sessionmaker, order_id) == "cancelled"


async def test_a_run_retakes_in_delivery_order_and_never_oversells(
    sessionmaker: Sessions, settings: InventorySettings, sku: str, outbox_events: Any
) -> None:
    await new_product(sessionmaker, settings, sku, stock=3)
    orders = [uuid.uuid4() for _ in range(3)]
    for order_id in orders:
        await reserve(sessionmaker, [OrderLine(sku, 1)], order_id)
    await expire(sessionmaker, settings, *orders)
    newcomer = uuid.uuid4()
    await reserve(sessionmaker, [OrderLine(sku, 2)], newcomer)  # 1 left for 3 late payers
    await apply(sessionmaker, *(Commit(cause(order_id), order_id) for order_id in orders))
    assert await stock(sessionmaker, sku) == (2, 2)
    assert [await status(sessionmaker, o) for o in orders] == [
        "committed",
        "commit_failed",
        "commit_failed",
    ]
    mine = {str(o) for o in orders[1:]}
    failed = await outbox_events("inventory.stock_commit_failed", lambda d: d["order_id"] in mine)
    assert len(failed) == 2
