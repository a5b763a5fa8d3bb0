"""The outbox relay: publishes outbox rows with confirms, marks them sent only after.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` inside a transaction held while the batch
is published, so any number of relays share a table without publishing a row twice at once.
A relay crashing between publish and mark leaves the rows unsent: they are published again
and the consumers' inboxes absorb the duplicate (at-least-once, never at-most-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import driver_connection, qualified_name
from shared.messaging import metrics
from shared.messaging.broker import Broker, OutgoingMessage
from shared.messaging.outbox import Outbox
from shared.settings import BaseServiceSettings

logger = logging.getLogger(__name__)

# How often, at most, an idle relay refreshes the backlog gauges and prunes sent rows.
GAUGE_INTERVAL_SECONDS = 5.0
PRUNE_INTERVAL_SECONDS = 300.0
PRUNE_BATCH = 5000
FIRST_BACKOFF_SECONDS = 0.2


class PublishFailedError(RuntimeError):
    """Some rows of a batch were not confirmed; they stay unsent and are retried."""


class OutboxRelay:
    """Publishes one outbox table. ``start()`` runs it in the background, ``stop()`` flushes."""

    def __init__(
        self,
        *,
        settings: BaseServiceSettings,
        engine: AsyncEngine,
        broker: Broker,
        outbox: Outbox,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.broker = broker
        self.outbox = outbox
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._last_gauge = 0.0
        self._last_prune = 0.0
        self._table_label = outbox.table.fullname
        table = outbox.table
        # Fixed texts run on the driver connection, prepared once per connection: the claim
        # and the mark are the relay's two statements per batch. The ids travel as one
        # array, not as an IN list of one parameter per row.
        name = qualified_name(table)
        self._claim_statement = (
            f"SELECT id, event_type, body::text FROM {name} "  # noqa: S608 (our own table)
            "WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED"
        )
        self._mark_sent_statement = f"UPDATE {name} SET sent_at = now() WHERE id = ANY($1::uuid[])"  # noqa: S608

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start relaying in a background task (the broker must be connected)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=f"relay {self._table_label}")

    async def stop(self, *, drain_seconds: float | None = None) -> None:
        """Stop the loop, then publish what is left (bounded by ``drain_seconds``), then return."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close_listener()
        limit = (
            self.settings.worker_shutdown_timeout_seconds
            if drain_seconds is None
            else drain_seconds
        )
        try:
            await asyncio.wait_for(self.flush(), limit)
        except Exception as exc:  # a flush failure leaves rows for the next relay
            logger.warning("outbox flush at stop incomplete: %r", exc)

    async def flush(self) -> int:
        """Publish batches until none is left; the number published."""
        total = 0
        while True:
            sent = await self.relay_batch()
            total += sent
            if sent < self.settings.outbox_batch_size:
                return total

    # -- one batch ---------------------------------------------------------------------------

    async def relay_batch(self) -> int:
        """Claim, publish and mark one batch; the number confirmed. Raise if some failed."""
        publisher = await self.broker.publisher()
        async with self.engine.begin() as connection:
            messages = await self.claim(connection)
            if not messages:
                return 0
            results = await publisher.publish_many(messages)
            confirmed = [m for m, error in zip(messages, results, strict=True) if error is None]
            failed = [(m, e) for m, e in zip(messages, results, strict=True) if e is not None]
            await self._mark_sent(connection, confirmed)
            await self._record_failures(connection, failed)
        for message in confirmed:
            metrics.EVENTS_PUBLISHED.labels(message.event_type).inc()
        if failed:
            raise PublishFailedError(
                f"{len(failed)} of {len(messages)} not confirmed: {failed[0][1]!r}"
            )
        return len(confirmed)

    async def claim(self, connection: AsyncConnection) -> list[OutgoingMessage]:
        """Lock a batch of unsent rows, oldest first, skipping rows other relays hold."""
        db = await driver_connection(connection)
        rows = await db.fetch(self._claim_statement, self.settings.outbox_batch_size)
        return [OutgoingMessage(str(row[0]), row[1], row[2].encode()) for row in rows]

    async def _mark_sent(self, connection: AsyncConnection, sent: list[OutgoingMessage]) -> None:
        if sent:
            db = await driver_connection(connection)
            await db.execute(self._mark_sent_statement, [uuid.UUID(m.event_id) for m in sent])

    async def _record_failures(
        self, connection: AsyncConnection, failed: list[tuple[OutgoingMessage, BaseException]]
    ) -> None:
        table = self.outbox.table
        for message, error in failed:
            metrics.PUBLISH_FAILURES.labels(message.event_type).inc()
            await connection.execute(
                update(table)
                .where(table.c.id == message.event_id)
                .values(attempts=table.c.attempts + 1, last_error=repr(error)[:1000])
            )

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        while not self._stopping.is_set():
            try:
                await self._ensure_listener()
                self._wake.clear()
                sent = await self.relay_batch()
                backoff = FIRST_BACKOFF_SECONDS
                if sent >= self.settings.outbox_batch_size:
                    continue  # more is waiting: no pause
                await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Broker or database away: retry with capped exponential backoff.
                logger.warning("outbox relay retrying in %.1fs: %r", backoff, exc)
                await self._pause(backoff)
                backoff = min(backoff * 2, self.settings.outbox_max_backoff_seconds)
                continue
            await self._pause(self.settings.outbox_poll_interval_seconds)

    async def _pause(self, seconds: float) -> None:
        """Sleep until a NOTIFY, a stop, or ``seconds``, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _ensure_listener(self) -> None:
        # LISTEN needs a connection of its own, outside the pool, that stays open.
        if self._listener is not None and not self._listener.is_closed():
            return
        await self._close_listener()
        url = self.engine.url
        try:
            listener = await asyncpg.connect(
                host=url.host,
                port=url.port,
                user=url.username,
                password=url.password,
                database=url.database,
            )
            await listener.add_listener(self.outbox.channel, self._on_notify)
        except Exception as exc:  # polling still works without it
            logger.warning("outbox LISTEN unavailable, polling only: %r", exc)
            return
        self._listener = listener
        self._wake.set()  # rows may have arrived while nobody listened

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and not listener.is_closed():
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_gauge >= GAUGE_INTERVAL_SECONDS:
            self._last_gauge = now
            await self.refresh_gauges()
        if now - self._last_prune >= PRUNE_INTERVAL_SECONDS:
            self._last_prune = now
            await self.prune()

    async def refresh_gauges(self) -> tuple[int, float]:
        """Set and return the backlog and the age in seconds of the oldest unsent row."""
        table = self.outbox.table
        statement = select(func.count(), func.min(table.c.created_at)).where(
            table.c.sent_at.is_(None)
        )
        async with self.engine.connect() as connection:
            count, oldest = (await connection.execute(statement)).one()
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        metrics.OUTBOX_BACKLOG.labels(self._table_label).set(count)
        metrics.OUTBOX_OLDEST_UNSENT_AGE.labels(self._table_label).set(max(age, 0.0))
        return int(count), age

    async def prune(self) -> int:
        """Delete sent rows older than the retention, in bounded batches; the number deleted."""
        table = self.outbox.table
        cutoff = datetime.now(UTC) - timedelta(hours=self.settings.outbox_retention_hours)
        doomed = (
            select(table.c.id)
            .where(table.c.sent_at.is_not(None), table.c.sent_at < cutoff)
            .limit(PRUNE_BATCH)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        total = 0
        while True:
            async with self.engine.begin() as connection:
                result = await connection.execute(delete(table).where(table.c.id.in_(doomed)))
            deleted = int(result.rowcount)
            total += deleted
            if deleted < PRUNE_BATCH:
                return total
