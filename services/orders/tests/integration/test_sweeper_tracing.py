"""The sweeper's events continue the trace of the request that placed the order: same trace,
the sampling decision kept (docs/tracing.md)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from orders.config import OrdersSettings
from services.orders.tests.conftest import Place, Product, User
from services.orders.tests.saga_helpers import column, expire, new_order, sweep
from shared.testing.tracing import assert_job_continued, in_memory_tracing, in_trace, stored_trace
from shared.tracing import untraced

pytestmark = pytest.mark.usefixtures("database")


async def _stored(engine: AsyncEngine, order_id: uuid.UUID, event_type: str) -> Any:
    async with engine.connect() as connection:
        return await connection.scalar(
            text(
                "SELECT trace_context FROM orders.outbox "
                "WHERE event_type = :type AND body->'data'->>'order_id' = :order_id"
            ),
            {"type": event_type, "order_id": str(order_id)},
        )


@pytest.mark.parametrize("sampled", [True, False], ids=["sampled", "unsampled"])
async def test_the_sweepers_cancellation_continues_the_trace_the_order_was_placed_in(
    sampled: bool,
    place: Place,
    product: Product,
    customer: User,
    engine: AsyncEngine,
    settings: OrdersSettings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    with in_memory_tracing() as exporter:
        with in_trace(sampled=sampled) as request:
            order_id = await new_order(place, product, customer)
        assert stored_trace(await column(engine, order_id, "trace_context")) == request
        await expire(engine, order_id)
        exporter.clear()
        with untraced():  # as the worker runs its periodic jobs
            await sweep(sessionmaker, settings)

    cancelled = await _stored(engine, order_id, "orders.order_cancelled")
    assert_job_continued(cancelled, request, exporter, job_span="sweep order")
