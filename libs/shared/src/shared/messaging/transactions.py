"""A batch of deliveries handled in one transaction, and what happens when it fails.

One transaction claims every inbox key of the batch, runs the handlers of the new events in
delivery order (``handlers.handler_runs``), commits, then acks; a duplicate is acked with its
handler not run. If a handler raises, the transaction rolls back, that event alone is given
back (``settlement``) and the others try again together. A deadlock or serialization
failure between batches, or a database outage past the in-place retries
(``database_retry``), is no event's fault: the batch's events are then handled one per
transaction. So every rule holds per event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import database_unavailable
from shared.messaging.database_retry import DatabaseRetry
from shared.messaging.handlers import Delivery, apply_run, handler_runs
from shared.messaging.inbox import claim_events
from shared.messaging.outbox import deferring_events
from shared.messaging.settlement import count_success, give_back, settle
from shared.tracing.messaging import consuming, event_trace_ids

logger = logging.getLogger(__name__)

# Errors that one event alone might not have met: a serialization failure, a deadlock or a
# lock timeout between transactions that each hold a batch's locks.
_BATCH_CONFLICT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})

# A delivery whose handler raised, with the trace and span ids of its consumer span (None
# when tracing is off or no sampled trace follows it) for the line that gives it back.
_Failure = tuple[Delivery, tuple[str, str] | None]


class Transactions:
    """Handles the batches of the consumer ``label`` against its inbox (module doc)."""

    def __init__(
        self,
        label: str,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        inbox: Table,
        retry: DatabaseRetry,
        delivery_limit: int,
        in_order: bool,
    ) -> None:
        self.label = label
        self.sessionmaker = sessionmaker
        self.inbox = inbox
        self._retry = retry
        self._delivery_limit = delivery_limit
        # One runner settles deliveries in order on a channel of its own: every earlier
        # delivery is settled already, so one ack of the last covers a batch.
        self._in_order = in_order

    async def handle_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Process decoded (and prepared) deliveries to the end, in one transaction when all
        succeed (module doc)."""
        pending = list(deliveries)
        while len(pending) > 1:
            failure = await self._try_as_one_transaction(pending)
            if failure is None:
                return
            at_fault, error = failure
            if at_fault is None or _not_one_events_fault(error):
                break  # not one event's fault (a deadlock between batches, say): one by one
            # That event's handler raised: it goes back (as it would alone) and the others
            # try again together, so it is run once per delivery and theirs are not delayed.
            delivery, trace_ids = at_fault
            await give_back(
                self.label, delivery, error, limit=self._delivery_limit, trace_ids=trace_ids
            )
            pending.remove(delivery)
        for item in pending:
            await self._handle_alone(item)

    async def _try_as_one_transaction(
        self, batch: list[Delivery]
    ) -> tuple[_Failure | None, Exception] | None:
        """Handle the batch in one transaction and ack it: None. Otherwise nothing is settled
        or committed; the delivery whose handler raised (None if none did) and the error."""
        started = time.perf_counter()
        failed: list[_Failure] = []
        try:
            handled = await self._retry(
                lambda: self._run_handlers(batch, failed=failed), what=f"a batch of {len(batch)}"
            )
        except Exception as exc:
            logger.info("%s: batch of %d failed: %r", self.label, len(batch), exc)
            return (failed[0] if failed else None), exc
        elapsed = time.perf_counter() - started
        for new in handled:
            count_success(self.label, new, elapsed)
        if self._in_order:
            await settle(self.label, batch[-1].message.ack(multiple=True))
        else:
            for delivery in batch:
                await settle(self.label, delivery.message.ack())
        return None

    async def _handle_alone(self, delivery: Delivery) -> None:
        event = delivery.event
        started = time.perf_counter()
        failed: list[_Failure] = []
        try:
            handled = await self._retry(
                lambda: self._run_handlers([delivery], failed=failed),
                what=f"{event.type} {event.id}",
            )
        except Exception as exc:
            trace_ids = failed[0][1] if failed else None
            await give_back(
                self.label, delivery, exc, limit=self._delivery_limit, trace_ids=trace_ids
            )
            return
        count_success(self.label, handled[0], time.perf_counter() - started)
        await settle(self.label, delivery.message.ack())

    async def _run_handlers(
        self, batch: list[Delivery], *, failed: list[_Failure] | None = None
    ) -> list[bool]:
        """Claim every inbox key and run the handlers of the new events, in one transaction;
        per delivery, False for a duplicate. A delivery whose handler raises is appended to
        ``failed`` (with its consumer span's trace ids) before the exception propagates;
        ``failed`` holds this attempt's only (an attempt retried in place starts it again:
        the event at fault in an attempt the database cut short is not at fault in the
        next)."""
        if failed is not None:
            failed.clear()
        async with (
            consuming(self.label, batch),  # spans (shared.tracing.messaging)
            self.sessionmaker() as session,
            session.begin(),
            deferring_events(session),
        ):
            claimed = await claim_events(
                session,
                table=self.inbox,
                events=[(d.event.id, d.event.type) for d in batch],
                consumer=self.label,
            )
            handled: list[bool] = []
            new: list[Delivery] = []
            for delivery in batch:
                event_id = delivery.event.id
                is_new = event_id in claimed
                claimed.discard(event_id)  # the same event twice in a batch: handled once
                handled.append(is_new)
                if is_new:
                    new.append(delivery)
            for run in handler_runs(new):
                try:
                    await apply_run(session, run)
                except Exception:
                    # A run of one is that event's fault; of several, nobody knows whose.
                    if failed is not None and len(run) == 1:
                        # Its span ends with the transaction; the give-back is logged later.
                        failed.append((run[0], event_trace_ids(run[0].event.id)))
                    raise
        return handled


def _not_one_events_fault(exc: BaseException) -> bool:
    """A batching conflict, or the database away past the in-place retries."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(cause, "sqlstate", None) in _BATCH_CONFLICT_SQLSTATES or database_unavailable(
        exc
    )
