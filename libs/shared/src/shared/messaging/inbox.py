"""Inbox: the record of processed events that makes a consumer idempotent.

The key ``(event_id, consumer)`` is inserted in the same transaction as the handler's effect
and the primary key decides (no check-then-insert race). Deduplication is per consumer: two
purposes handling the same event each do so once.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    DateTime,
    Index,
    String,
    Table,
    delete,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.db import driver_connection, qualified_name


class InboxMixin:
    """Columns of a processed-events table. ``class ProcessedEvent(InboxMixin, Base): pass``."""

    __tablename__ = "processed_events"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consumer: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(200))
    processed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Index, ...]:
        # Pruning finds a consumer's oldest rows without reading the whole table.
        return (Index(f"ix_{cls.__tablename__}_consumer_processed_at", "consumer", "processed_at"),)


def inbox_table(model: type[InboxMixin]) -> Table:
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise TypeError(f"{model!r} is not a mapped table class")
    return table


async def claim_events(
    session: AsyncSession,
    *,
    table: Table,
    events: Sequence[tuple[uuid.UUID, str]],
    consumer: str,
) -> set[uuid.UUID]:
    """Record each ``(event id, event type)`` as processed by ``consumer``, in one statement;
    the ids claimed now (the others were processed before, or appear twice in ``events``).

    A concurrent claim of the same key waits on the row lock and then sees the conflict, so
    exactly one transaction wins.
    """
    if not events:
        return set()
    db = await driver_connection(session)
    rows = await db.fetch(
        _claim_many_statement(table),
        [event_id for event_id, _ in events],
        [event_type for _, event_type in events],
        consumer,
    )
    return {row[0] for row in rows}


@functools.cache
def _claim_many_statement(table: Table) -> str:
    # One fixed statement whatever the batch size: the keys travel as two arrays, so it is
    # prepared once per connection, and it runs on the driver connection (the consumer's
    # first statement of every transaction). ON CONFLICT DO NOTHING also skips a key
    # repeated within the arrays, so an event delivered twice in one batch is claimed once.
    return (
        f"INSERT INTO {qualified_name(table)} (event_id, consumer, event_type) "  # noqa: S608 (our own table)
        "SELECT e.event_id, $3, e.event_type "
        "FROM unnest($1::uuid[], $2::text[]) AS e(event_id, event_type) "
        "ON CONFLICT DO NOTHING RETURNING event_id"
    )


PRUNE_BATCH = 5000


async def prune_inbox(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    table: Table,
    consumer: str,
    older_than: datetime,
) -> int:
    """Delete ``consumer``'s inbox rows processed before ``older_than``, in bounded batches
    (one transaction each, rows another pruner holds skipped); the number deleted.

    A key must outlive every copy of its event that could still arrive: relays re-publish
    within seconds to minutes, so the retention is counted in days.
    """
    doomed = (
        select(table.c.event_id)
        .where(table.c.consumer == consumer, table.c.processed_at < older_than)
        .limit(PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    total = 0
    while True:
        async with sessionmaker() as session, session.begin():
            result = await session.execute(
                delete(table).where(
                    table.c.consumer == consumer,
                    table.c.event_id.in_(doomed.scalar_subquery()),
                )
            )
        deleted = int(getattr(result, "rowcount", 0))
        total += deleted
        if deleted < PRUNE_BATCH:
            return total
