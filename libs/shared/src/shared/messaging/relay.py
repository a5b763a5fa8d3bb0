"""The outbox relay: publishes outbox rows with confirms, marks them sent only after.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` inside a transaction held while the batch
is published, so any number of relays share a table without publishing a row twice at once.
Each relay runs its batches, one at a time, on a connection of its own (asyncpg, outside the
pool), which also LISTENs for new rows: a batch costs its four statements and nothing of the
pool's or SQLAlchemy's transaction machinery, which costs more CPU than the statements.
Marking a row sent also removes the data keys its contract redacts on send (a payment
token). A relay crashing between publish and mark leaves the rows unsent: they are published
again and the consumers' inboxes absorb the duplicate (at-least-once, never at-most-once).
Pruning sent rows and reporting the backlog are the worker's periodic jobs (``outbox_pruning``,
``backlog_reading``), not the loop's: the lag is reported while the loop cannot publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import database_unavailable, qualified_name
from shared.messaging import metrics
from shared.messaging.broker import Broker, OutgoingMessage
from shared.messaging.jobs import PeriodicJob
from shared.messaging.linger import Linger
from shared.messaging.outbox import Outbox, redacted_on_send
from shared.settings import BaseServiceSettings
from shared.tracing import untraced
from shared.tracing.messaging import publishing, stored_headers

logger = logging.getLogger(__name__)

# How often the worker's jobs refresh the backlog gauges and prune sent rows.
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
        self._db: asyncpg.Connection | None = None  # batches and LISTEN (module doc)
        self._batch_lock = asyncio.Lock()  # one batch at a time on that connection
        self._linger = Linger(settings.outbox_linger_ms)
        self._table_label = outbox.table.fullname
        table = outbox.table
        # Fixed texts, prepared once on the relay's connection: the claim and the mark are
        # its two statements per batch. The ids travel as one array, not as an IN list of one
        # parameter per row. (Names come from our own models.)
        name = qualified_name(table)
        self._claim_statement = (
            f"SELECT id, event_type, body::text, trace_context::text FROM {name} "  # noqa: S608
            "WHERE sent_at IS NULL ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED"
        )
        # A sent row keeps no secret its consumers have had (a payment token): the marked keys
        # are removed in the same update that marks it sent, so it costs no statement of its
        # own. One key list for every type that marks any (one fixed statement); rows of
        # other types are compared by type only and left as they are.
        redactions = redacted_on_send()
        self._redacted_types = sorted(redactions)
        self._redacted_keys = sorted(set().union(*redactions.values()))
        self._mark_sent_statement = (
            f"UPDATE {name} SET sent_at = now(), body = CASE "  # noqa: S608
            "WHEN event_type = ANY($2::text[]) "
            "THEN jsonb_set(body, '{data}', (body->'data') - $3::text[]) ELSE body END "
            "WHERE id = ANY($1::uuid[])"
        )
        self._record_failure_statement = (
            f"UPDATE {name} SET attempts = attempts + 1, last_error = $2 WHERE id = $1"  # noqa: S608
        )

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
        limit = (
            self.settings.worker_shutdown_timeout_seconds
            if drain_seconds is None
            else drain_seconds
        )
        try:
            await asyncio.wait_for(self.flush(), limit)
        except Exception as exc:  # a flush failure leaves rows for the next relay
            logger.warning("outbox flush at stop incomplete: %r", exc)
        finally:
            await self._close_connection()

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
        async with self._batch_lock:
            db = await self._connection()
            try:
                # The relay's own statements belong to no request's trace (shared.tracing).
                with untraced():
                    async with db.transaction():
                        messages = await self.claim(db)
                        if not messages:
                            return 0
                        publication = publishing(messages)  # producer spans (shared.tracing)
                        results = await publisher.publish_many(publication.messages)
                        publication.confirmed(results)
                        pairs = list(zip(messages, results, strict=True))
                        confirmed = [m for m, error in pairs if error is None]
                        failed = [(m, e) for m, e in pairs if e is not None]
                        await self._mark_sent(db, confirmed)
                        await self._record_failures(db, failed)
            except Exception as exc:
                # Lost, cut mid-protocol or refused by a database going away: the next
                # batch opens a new connection (the one classification: shared.db).
                if database_unavailable(exc) or isinstance(exc, OSError):
                    await self._close_connection()
                raise
        for message in confirmed:
            metrics.EVENTS_PUBLISHED.labels(message.event_type).inc()
        if failed:
            raise PublishFailedError(
                f"{len(failed)} of {len(messages)} not confirmed: {failed[0][1]!r}"
            )
        return len(confirmed)

    async def claim(self, db: asyncpg.Connection) -> list[OutgoingMessage]:
        """Lock a batch of unsent rows, oldest first, skipping rows other relays hold; ``db``
        is an asyncpg connection inside a transaction (the relay's, or a test's)."""
        rows = await db.fetch(self._claim_statement, self.settings.outbox_batch_size)
        return [
            OutgoingMessage(str(row[0]), row[1], row[2].encode(), stored_headers(row[3]))
            for row in rows
        ]

    async def _mark_sent(self, db: asyncpg.Connection, sent: list[OutgoingMessage]) -> None:
        if sent:
            await db.execute(
                self._mark_sent_statement,
                [uuid.UUID(m.event_id) for m in sent],
                self._redacted_types,
                self._redacted_keys,
            )

    async def _record_failures(
        self, db: asyncpg.Connection, failed: list[tuple[OutgoingMessage, BaseException]]
    ) -> None:
        for message, error in failed:
            metrics.PUBLISH_FAILURES.labels(message.event_type).inc()
            await db.execute(
                self._record_failure_statement, uuid.UUID(message.event_id), repr(error)[:1000]
            )

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        while not self._stopping.is_set():
            try:
                self._wake.clear()
                sent = await self.relay_batch()
                self._linger.batch_ended()
                backoff = FIRST_BACKOFF_SECONDS
                if sent >= self.settings.outbox_batch_size:
                    continue  # more is waiting: no pause
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
        """Sleep until a NOTIFY, a stop, or ``seconds``, whichever comes first; after a NOTIFY
        while batches come close together, a moment more, so that the commits right behind
        share the next batch (``shared.messaging.linger``)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        if self._wake.is_set() and not self._stopping.is_set():
            await self._linger.wait()

    async def _connection(self) -> asyncpg.Connection:
        """The relay's own connection, opened (and LISTENing) if it is not open."""
        if self._db is not None and not self._db.is_closed():
            return self._db
        await self._close_connection()
        url = self.engine.url
        db = await asyncpg.connect(
            host=url.host,
            port=url.port,
            user=url.username,
            password=url.password,
            database=url.database,
            timeout=self.settings.db_connect_timeout_seconds,
            server_settings={"application_name": f"{self.settings.service_name}-relay"},
        )
        try:
            await db.add_listener(self.outbox.channel, self._on_notify)
        except Exception as exc:  # polling still works without it
            logger.warning("outbox LISTEN unavailable, polling only: %r", exc)
        self._db = db
        self._wake.set()  # rows may have arrived while nobody listened
        return db

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _close_connection(self) -> None:
        db, self._db = self._db, None
        if db is not None and not db.is_closed():
            with contextlib.suppress(Exception):
                await db.close(timeout=2)

    # -- the worker's periodic jobs ------------------------------------------------------------

    def backlog_reading(self) -> PeriodicJob:
        """The periodic job that reports this outbox's backlog and lag on ``/metrics``."""
        return PeriodicJob(
            name=f"{self._table_label} backlog",
            interval=GAUGE_INTERVAL_SECONDS,
            run=self.refresh_gauges,
        )

    def outbox_pruning(self) -> PeriodicJob:
        """The periodic job that deletes this outbox's sent rows past the retention."""

        async def prune() -> None:
            if deleted := await self.prune():
                logger.info("%s: pruned %d sent rows", self._table_label, deleted)

        return PeriodicJob(
            name=f"{self._table_label} pruning", interval=PRUNE_INTERVAL_SECONDS, run=prune
        )

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
