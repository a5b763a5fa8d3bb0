"""A messaging harness on the real servers: the run's database (scratch schema) and broker.

Every test gets its own broker namespace under the run's (``{run}.{n}``), so its exchanges
and queues are its own; the harness deletes them at the end. Tables live in the scratch
schema ``messaging_test``, created from the mixins (services create theirs by migration).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import ClassVar

import pytest
from prometheus_client import REGISTRY
from pydantic_settings import SettingsConfigDict
from sqlalchemy import BigInteger, Identity, String, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts.inventory import StockLow
from shared.db import create_engine, create_sessionmaker, service_metadata
from shared.messaging import (
    Broker,
    Consumer,
    Envelope,
    EventHandler,
    InboxMixin,
    Outbox,
    OutboxMixin,
    OutboxRelay,
    RunningConsumer,
    delete_topology,
)
from shared.messaging.handlers import AnyHandler
from shared.settings import BaseServiceSettings

SCHEMA = "messaging_test"
EVENT_TYPE = StockLow.event_type
_namespaces = itertools.count(1)


class MessagingTestSettings(BaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MESSAGING_TEST_")
    service_name: ClassVar[str] = SCHEMA


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedEvent(InboxMixin, Base):
    pass


class Effect(Base):
    """What a handler did; deliberately without a unique key, so a duplicate would show."""

    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID]
    consumer: Mapped[str] = mapped_column(String(200))


def make_settings(**overrides: object) -> MessagingTestSettings:
    namespace = f"{os.environ['COMMERCE_BROKER_NAMESPACE']}.{next(_namespaces)}"
    values: dict[str, object] = {
        "db_user": "postgres",
        "broker_namespace": namespace,
        "broker_delivery_limit": 2,
        "broker_prefetch": 50,
        "broker_reconnect_interval_seconds": 0.5,
        "outbox_poll_interval_seconds": 0.5,
        "outbox_max_backoff_seconds": 1.0,
        "worker_shutdown_timeout_seconds": 10.0,
    }
    values.update(overrides)
    return MessagingTestSettings(**values)  # type: ignore[arg-type]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, what: str, seconds: float = 30.0
) -> None:
    """Poll until ``condition`` holds; the bound only stops a hung test, it is not asserted."""
    async with asyncio.timeout(seconds):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)
    raise AssertionError(what)


class Harness:
    def __init__(self, settings: MessagingTestSettings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.sessionmaker: async_sessionmaker[AsyncSession] = create_sessionmaker(engine)
        self.outbox = Outbox(OutboxEvent)
        self.brokers: list[Broker] = []
        self.relays: list[OutboxRelay] = []
        self.consumers: list[RunningConsumer] = []
        self.purposes: set[str] = set()

    async def broker(self) -> Broker:
        broker = Broker(self.settings)
        await broker.connect()
        self.brokers.append(broker)
        return broker

    async def emit(self, count: int, *, sku: str = "SKU-OK") -> list[uuid.UUID]:
        """Commit ``count`` events in one transaction (as a service would); their ids."""
        events = [
            Envelope.new(StockLow(sku=sku, available=n, reorder_point=5)) for n in range(count)
        ]
        async with self.sessionmaker() as session, session.begin():
            await self.outbox.add_many(session, events)
        return [event.id for event in events]

    def recording_handler(self, name: str) -> EventHandler:
        async def record(session: AsyncSession, event: Envelope) -> None:
            session.add(Effect(event_id=event.id, consumer=name))

        return record

    async def consumer(
        self,
        name: str,
        handler: AnyHandler | None = None,
        *,
        handlers: Mapping[str, AnyHandler] | None = None,
        broker: Broker | None = None,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        start: bool = True,
    ) -> RunningConsumer:
        """A consumer of ``inventory.stock_low`` (or of ``handlers``' event types); declared
        (and started unless told not)."""
        consumer = Consumer(
            name=name,
            handlers=handlers or {EVENT_TYPE: handler or self.recording_handler(name)},
            inbox=ProcessedEvent,
        )
        running = RunningConsumer(
            consumer,
            settings=self.settings,
            broker=broker or await self.broker(),
            sessionmaker=sessionmaker or self.sessionmaker,
        )
        self.purposes.add(name)
        self.consumers.append(running)
        await running.declare()
        if start:
            await running.start()
        return running

    async def relay(self, *, broker: Broker | None = None) -> OutboxRelay:
        relay = OutboxRelay(
            settings=self.settings,
            engine=self.engine,
            broker=broker or await self.broker(),
            outbox=self.outbox,
        )
        self.relays.append(relay)
        await relay.start()
        return relay

    async def effects(self, consumer: str) -> dict[uuid.UUID, int]:
        """How many times each event's effect was applied by ``consumer``."""
        statement = (
            select(Effect.event_id, func.count())
            .where(Effect.consumer == consumer)
            .group_by(Effect.event_id)
        )
        async with self.engine.connect() as connection:
            return {row[0]: row[1] for row in await connection.execute(statement)}

    async def unsent(self) -> int:
        statement = select(func.count()).where(OutboxEvent.sent_at.is_(None))
        async with self.engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def applied(self, consumer: str, count: int) -> bool:
        return sum((await self.effects(consumer)).values()) >= count

    async def close(self) -> None:
        for consumer in self.consumers:
            await consumer.stop(drain_seconds=5)
        for relay in self.relays:
            await relay.stop(drain_seconds=2)
        cleaner = await self.broker()
        channel = await cleaner.channel()
        await delete_topology(channel, settings=self.settings, purposes=self.purposes)
        for broker in self.brokers:
            await broker.close()


@pytest.fixture(scope="session")
async def messaging_engine(database: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the run's database whose scratch schema holds the mixins' tables."""
    engine = create_engine(make_settings())
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"'))
        await connection.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def harness(messaging_engine: AsyncEngine) -> AsyncIterator[Harness]:
    async with messaging_engine.begin() as connection:
        await connection.execute(
            text(f'TRUNCATE "{SCHEMA}".outbox, "{SCHEMA}".processed_events, "{SCHEMA}".effects')
        )
    harness = Harness(make_settings(), messaging_engine)
    try:
        yield harness
    finally:
        await harness.close()
