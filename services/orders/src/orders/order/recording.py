"""The one write of an order's move, and the one place this service writes its outbox.

Every move, whatever asked for it (an action, an event, the sweeper), is a
``saga.apply`` outcome written by ``record``: the orders' rows and history entries in one
statement (``repository.save``), then the events in one (``outbox.add_many``), both in the
caller's transaction. Inside a consumer's batch the shared outbox defers its rows to the
batch's end, so a batch writes them once.

POST /orders is the one exception, by design: it runs on a connection outside any
transaction, in one statement atomic by itself, and its ``orders.order_created`` rides in
that statement (``placement_repository.INSERT_ORDER``, CTE ``order_created``, built from the
same shared ``Outbox``). A separate outbox insert would need the two wrapped in BEGIN and
COMMIT: three more round trips on the app's hot path.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from orders.events import outbox
from orders.order import repository
from orders.order.repository import Change
from shared.context import current_request_id
from shared.contracts import EventPayload
from shared.messaging import Envelope


async def record(
    session: AsyncSession, *, changes: Sequence[Change], events: Sequence[Envelope]
) -> None:
    """Write the orders' changed states and history entries, and ``events`` to the outbox
    (published by the relay once the caller's transaction commits)."""
    await repository.save(session=session, changes=changes)
    await outbox.add_many(session, events)


def envelopes(payloads: Sequence[EventPayload], *, cause: Envelope | None) -> list[Envelope]:
    """The events to write: follow-ups of ``cause``, or caused by the current request."""
    if cause is not None:
        return [cause.caused(payload) for payload in payloads]
    return [Envelope.new(payload, causation_id=current_request_id()) for payload in payloads]
