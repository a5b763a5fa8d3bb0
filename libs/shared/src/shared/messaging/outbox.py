"""Transactional outbox: events are rows written in the caller's transaction.

A service maps a table with ``OutboxMixin`` (in its own schema, created by its migrations)
and writes events with ``Outbox(model).add(session, event)`` inside the transaction that
changes its state. Either both commit or neither does; the relay publishes rows later.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import DateTime, Index, Integer, String, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.contracts.base import all_contracts
from shared.db import driver_connection, qualified_name
from shared.messaging.envelope import Envelope
from shared.tracing.messaging import outbox_trace_contexts


class OutboxMixin:
    """Columns of an outbox table. ``class OutboxEvent(OutboxMixin, Base): pass``."""

    __tablename__ = "outbox"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the event id
    event_type: Mapped[str] = mapped_column(String(200))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the envelope, as published
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    # The W3C trace context of the transaction that wrote the row (traceparent, tracestate),
    # sent in the message's headers; NULL when tracing is off (shared.tracing.messaging).
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Index, ...]:
        # The relay scans only unsent rows, oldest first: a small partial index stays small
        # however many sent rows wait for pruning.
        return (
            Index(
                f"ix_{cls.__tablename__}_unsent",
                "created_at",
                postgresql_where=text("sent_at IS NULL"),
            ),
        )


# The session's events written at the end of its transaction (``deferring_events``).
_DEFERRED = "shared.messaging.outbox.deferred"


@asynccontextmanager
async def deferring_events(session: AsyncSession) -> AsyncIterator[None]:
    """Inside, ``add`` and ``add_many`` on ``session`` only collect their events; at the
    end, unless it raised, each outbox's events are written in one statement, still in the
    session's transaction (the caller commits after this block).

    The consumer runs a batch's handlers inside it: each handler's events otherwise cost a
    round trip of their own, about a third of a saga step's statements. Nothing a handler
    does reads its own outbox rows back, and atomicity is the transaction's, so the only
    difference is when in the transaction the rows are inserted.
    """
    if _DEFERRED in session.info:  # already deferring: the outer block writes them all
        yield
        return
    deferred: dict[Outbox, list[Envelope]] = {}
    session.info[_DEFERRED] = deferred
    try:
        yield
    finally:
        session.info.pop(_DEFERRED, None)
    for outbox, events in deferred.items():
        await outbox.add_many(session, events)


def redacted_on_send() -> dict[str, frozenset[str]]:
    """Per event type, the ``data`` keys removed from an outbox row once it is sent (the
    contracts' ``redacted_on_send``; types without any are left out)."""
    return {
        event_type: model.redacted_on_send
        for event_type, _, model in all_contracts()
        if model.redacted_on_send
    }


def notify_channel(table: Table) -> str:
    """The LISTEN/NOTIFY channel that announces new rows of ``table``."""
    return f"outbox_{table.schema}_{table.name}" if table.schema else f"outbox_{table.name}"


class Outbox:
    """Writes events into one outbox table; the one object a service needs to emit events."""

    def __init__(self, model: type[OutboxMixin]) -> None:
        table = getattr(model, "__table__", None)
        if not isinstance(table, Table):
            raise TypeError(f"{model!r} is not a mapped table class")
        self.model = model
        self.table: Table = table
        self.channel = notify_channel(table)
        # One fixed statement whatever the number of events: the rows travel as four arrays,
        # so Postgres and asyncpg prepare it once per connection; it runs on the driver
        # connection (an INSERT ... VALUES built per call, or the same text through
        # SQLAlchemy, costs several times its CPU; bench/CHANGES.md). The insert rides in a
        # CTE of the NOTIFY: one round trip; Postgres delivers the notification at commit and
        # folds duplicates within a transaction.
        self.statement: str = (
            f"WITH inserted_events AS ({self.insert_sql(first_parameter=1)}) "
            "SELECT pg_notify($5, '')"
        )

    def insert_sql(self, *, first_parameter: int) -> str:
        """The insert of ``add_many``'s rows, the four arrays of ``parameters`` taken from
        ``$first_parameter`` on: for a statement that writes its events in a CTE of its own
        (one round trip less) and calls ``pg_notify(channel, '')`` when it wrote any."""
        ids, types, bodies, traces = (f"${first_parameter + i}" for i in range(4))
        return (
            f"INSERT INTO {qualified_name(self.table)} "  # noqa: S608 (our table)
            "(id, event_type, body, trace_context) "
            "SELECT id, event_type, CAST(body AS jsonb), CAST(trace_context AS jsonb) "
            f"FROM unnest({ids}::uuid[], {types}::text[], {bodies}::text[], {traces}::text[]) "
            "AS e(id, event_type, body, trace_context)"
        )

    async def add(self, session: AsyncSession | AsyncConnection, event: Envelope) -> None:
        """Write ``event`` in the session's current transaction; wake relays at commit."""
        await self.add_many(session, [event])

    async def add_many(
        self, session: AsyncSession | AsyncConnection, events: Sequence[Envelope]
    ) -> None:
        """Write several events in one statement, same transaction semantics as ``add``.

        ``session`` may also be a Core connection: its transaction is used the same way.
        Pending ORM changes of a session are flushed first, so they reach the database before
        the event that announces them, as they would if the event were an ORM insert.
        """
        if not events:
            return
        if isinstance(session, AsyncSession):
            deferred: dict[Outbox, list[Envelope]] | None = session.info.get(_DEFERRED)
            if deferred is not None:  # a consumer's batch: written once, before its commit
                deferred.setdefault(self, []).extend(events)
                return
            if session.new or session.dirty or session.deleted:
                await session.flush()
        db = await driver_connection(session)
        await db.execute(self.statement, *self.parameters(events))

    def parameters(self, events: Sequence[Envelope]) -> tuple[Any, ...]:
        """The positional parameters of ``statement`` for ``events``: four arrays, then the
        channel. Each row's trace context is the current one (``shared.tracing.messaging``)."""
        return (
            [e.id for e in events],
            [e.type for e in events],
            [orjson.dumps(e.to_json()).decode() for e in events],
            outbox_trace_contexts(events),
            self.channel,
        )
