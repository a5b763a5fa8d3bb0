"""A reservation's expiry continues the trace of the order_created that reserved it: each
order's reservation_expired in its own order's trace, sampled or not as it was."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inventory.config import InventorySettings
from inventory.events import OutboxEvent
from inventory.stock.models import Reservation
from inventory.stock.runs import OrderLine, Reserve
from inventory.sweeper import sweep_once
from services.inventory.tests.integration.test_reservations import apply, cause, new_product
from shared.testing.tracing import StoredTrace, in_memory_tracing, in_trace, stored_trace
from shared.tracing import untraced

Sessions = async_sessionmaker[AsyncSession]


async def _expired(sessionmaker: Sessions, order_id: uuid.UUID) -> StoredTrace | None:
    async with sessionmaker() as session:
        stored = await session.scalar(
            select(OutboxEvent.trace_context).where(
                OutboxEvent.event_type == "inventory.reservation_expired",
                OutboxEvent.body["data"]["order_id"].astext == str(order_id),
            )
        )
    return stored_trace(stored)


async def test_each_expired_reservation_continues_its_orders_trace(
    sessionmaker: Sessions, settings: InventorySettings, sku: str
) -> None:
    await new_product(sessionmaker, settings, sku, stock=10)
    orders = {True: uuid.uuid4(), False: uuid.uuid4()}  # by whether its trace is sampled
    requests: dict[bool, StoredTrace] = {}
    with in_memory_tracing() as exporter:
        for sampled, order_id in orders.items():
            with in_trace(sampled=sampled) as requests[sampled]:
                await apply(sessionmaker, Reserve(cause(order_id), order_id, [OrderLine(sku, 1)]))
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Reservation)
                .where(Reservation.order_id.in_(orders.values()))
                .values(expires_at=Reservation.created_at - timedelta(seconds=1))
            )
        exporter.clear()
        with untraced():  # as the worker runs its periodic jobs
            await sweep_once(sessionmaker=sessionmaker, settings=settings)  # both in one batch

    (span,) = exporter.get_finished_spans()  # the sampled order's alone
    assert span.name == "expire reservation"
    assert span.parent is not None
    assert span.parent.span_id == requests[True].span_id
    assert span.context is not None
    assert await _expired(sessionmaker, orders[True]) == StoredTrace(
        requests[True].trace_id, span.context.span_id, sampled=True
    )
    assert await _expired(sessionmaker, orders[False]) == requests[False]


async def test_with_tracing_off_a_reservation_and_its_expiry_store_no_trace(
    sessionmaker: Sessions, settings: InventorySettings, sku: str
) -> None:
    await new_product(sessionmaker, settings, sku, stock=10)
    order_id = uuid.uuid4()
    await apply(sessionmaker, Reserve(cause(order_id), order_id, [OrderLine(sku, 1)]))
    async with sessionmaker() as session, session.begin():
        reservation = await session.get(Reservation, order_id)
        assert reservation is not None
        assert reservation.trace_context is None
        reservation.expires_at = reservation.created_at - timedelta(seconds=1)
    await sweep_once(sessionmaker=sessionmaker, settings=settings)
    assert await _expired(sessionmaker, order_id) is None
