"""Secrets in events outlive nothing: a payment token leaves the outbox row once the broker
confirmed it, and sent rows are pruned after the retention."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.inventory import StockLow
from shared.contracts.money import Money
from shared.contracts.orders import PaymentRequested
from shared.logging import AMQP_CLIENT_LOGGERS, configure_logging
from shared.messaging import Consumer, Envelope, RunningConsumer
from shared.messaging.outbox import redacted_on_send

from .conftest import Harness, OutboxEvent, ProcessedEvent, wait_until

TOKEN = "tok_visa_secret_4242"
REQUESTED = PaymentRequested.event_type


def _request() -> Envelope:
    return Envelope.new(
        PaymentRequested(
            order_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            amount=Money(amount=1999, currency="USD"),
            payment_token=TOKEN,
        )
    )


async def _bodies(harness: Harness) -> dict[uuid.UUID, tuple[dict[str, Any], datetime | None]]:
    statement = select(OutboxEvent.id, OutboxEvent.body, OutboxEvent.sent_at)
    async with harness.engine.connect() as connection:
        return {row[0]: (row[1], row[2]) for row in await connection.execute(statement)}


def test_only_the_payment_token_is_marked_for_redaction() -> None:
    assert redacted_on_send() == {REQUESTED: frozenset({"payment_token"})}


async def test_payment_token_is_removed_from_the_outbox_row_once_the_broker_confirmed_it(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    received: list[str] = []

    async def take_token(session: AsyncSession, event: Envelope) -> None:
        received.append(event.payload(PaymentRequested).payment_token)
        if len(received) == 1:  # a failure logged with its traceback, then the redelivery
            raise RuntimeError("provider unreachable")

    name = "payments-like"
    running = RunningConsumer(
        Consumer(name=name, handlers={REQUESTED: take_token}, inbox=ProcessedEvent),
        settings=harness.settings,
        broker=await harness.broker(),
        sessionmaker=harness.sessionmaker,
    )
    harness.purposes.add(name)
    harness.consumers.append(running)
    await running.start()
    await harness.consumer("stock-alerts")  # binds inventory.stock_low so it is routable

    request = _request()
    async with harness.sessionmaker() as session, session.begin():
        await harness.outbox.add(session, request)
    [other] = await harness.emit(1)
    stored_before = (await _bodies(harness))[request.id][0]
    assert stored_before["data"]["payment_token"] == TOKEN  # until it is sent

    with debug_logging_to_stderr(harness):  # the most a deployment can ask for
        await harness.relay()
        await wait_until(lambda: _is_zero(harness), what="both sent")
        await wait_until(lambda: _took(received, 2), what="the redelivery handled")
    logged = capsys.readouterr().err

    assert received == [TOKEN, TOKEN]  # the consumer got it, twice: the message keeps it
    rows = await _bodies(harness)
    body, sent_at = rows[request.id]
    assert sent_at is not None
    assert "payment_token" not in body["data"]
    expected_data = {k: v for k, v in stored_before["data"].items() if k != "payment_token"}
    assert body == {**stored_before, "data": expected_data}
    assert rows[other][0]["data"]["sku"] == "SKU-OK"  # other types are left as they were
    assert "handler failed for orders.payment_requested" in logged
    assert TOKEN not in logged


@contextmanager
def debug_logging_to_stderr(harness: Harness) -> Iterator[None]:
    """The platform's own logging set to DEBUG, as ``configure_logging`` does in a process."""
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in AMQP_CLIENT_LOGGERS]
    saved = (root.handlers[:], root.level, [logger.level for logger in loggers])
    configure_logging(harness.settings.model_copy(update={"log_level": "DEBUG"}))
    try:
        yield
    finally:
        root.handlers[:], level, levels = saved
        root.setLevel(level)
        for logger, logger_level in zip(loggers, levels, strict=True):
            logger.setLevel(logger_level)


async def _is_zero(harness: Harness) -> bool:
    return await harness.unsent() == 0


async def _took(received: list[str], count: int) -> bool:
    return len(received) >= count


async def test_sent_outbox_rows_older_than_the_retention_are_pruned_unsent_ones_never(
    harness: Harness,
) -> None:
    relay = await harness.relay()
    await relay.stop()  # only prune() below touches the rows (the worker's job calls it)
    events = [Envelope.new(StockLow(sku="SKU-P", available=n, reorder_point=1)) for n in range(4)]
    async with harness.sessionmaker() as session, session.begin():
        await harness.outbox.add_many(session, events)
    past = datetime.now(UTC) - timedelta(hours=harness.settings.outbox_retention_hours + 1)
    recent = datetime.now(UTC) - timedelta(hours=harness.settings.outbox_retention_hours - 1)
    sent_at = {events[0].id: past, events[1].id: past, events[2].id: recent}  # [3] unsent
    async with harness.engine.begin() as connection:
        for event_id, at in sent_at.items():
            await connection.execute(
                update(OutboxEvent).where(OutboxEvent.id == event_id).values(sent_at=at)
            )
        await connection.execute(  # an unsent row however old is never pruned
            update(OutboxEvent).where(OutboxEvent.id == events[3].id).values(created_at=past)
        )

    assert await relay.prune() == 2
    assert set(await _bodies(harness)) == {events[2].id, events[3].id}
