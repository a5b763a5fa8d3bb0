"""Orders that waited too long on inventory or payments: each due one gets the saga's
timeout (``saga.apply`` with ``Trigger.TIMEOUT``).

Pending too long: cancelled (the order_cancelled releases any reservation inventory may
hold). Awaiting payment too long: payment requested again, and after the configured
attempts, or once the reservation is within ``payment_request_margin_seconds`` of expiring,
cancelled. Refund pending too long: refund requested again, for as long as it takes; the
order never moves here. Rows are claimed with SKIP LOCKED, so several workers share the work
without meeting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from orders.config import OrdersSettings
from orders.order import metrics, repository
from orders.order.recording import envelopes, record
from orders.order.repository import Change
from orders.saga import OrderState, OrderStatus, Outcome, Step, Trigger, apply
from shared.contracts.orders import PaymentRequested, RefundRequested
from shared.messaging import Envelope
from shared.tracing.messaging import JobTraces

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    payment_requested_again: int
    cancelled: int
    refund_requested_again: int = 0

    @property
    def resolved(self) -> int:
        """Orders the pass took: a full batch means more may be due."""
        return self.payment_requested_again + self.cancelled + self.refund_requested_again


async def sweep_stuck_orders(
    *, session: AsyncSession, settings: OrdersSettings, now: datetime | None = None
) -> SweepResult:
    """Resolve one batch of orders that waited too long on inventory or payments."""
    now = now or datetime.now(UTC)
    requested = cancelled = refunds = 0
    changes: list[Change] = []
    events: list[Envelope] = []
    # Each order's events continue the trace it was placed in, not one of the sweep's own.
    async with session.begin():
        with JobTraces("sweep order") as traces:
            for order, trace_context in await repository.claim_due_for_sweep(
                session=session, now=now, limit=settings.sweeper_batch_size
            ):
                outcome = apply(order, Step(Trigger.TIMEOUT, timeout_reason(order), now), settings)
                if outcome.state is not order:
                    changes.append(Change(outcome.state, outcome.entry))
                emitted = envelopes(outcome.events, cause=None)
                traces.emit(trace_context, emitted)
                events.extend(emitted)
                if outcome.entry is not None:
                    logger.warning(
                        "order %s cancelled by the sweeper: %s", order.id, outcome.entry.reason
                    )
                    cancelled += 1
                elif _asked_again(order, outcome, RefundRequested):
                    refunds += 1
                elif _asked_again(order, outcome, PaymentRequested):
                    requested += 1
                elif order.status is OrderStatus.REFUND_PENDING:
                    # The move to refund_pending requires the payment id; should a row lack
                    # it anyway, it is left for an operator rather than failing every sweep.
                    logger.error(
                        "order %s is refund_pending without a payment id: not swept", order.id
                    )
            await record(session, changes=changes, events=events)
    return SweepResult(
        payment_requested_again=requested, cancelled=cancelled, refund_requested_again=refunds
    )


def timeout_reason(order: OrderState) -> str:
    """The history reason of a cancellation by the sweeper."""
    return "reservation_timeout" if order.status is OrderStatus.PENDING else "payment_timeout"


def _asked_again(
    order: OrderState, outcome: Outcome, kind: type[PaymentRequested | RefundRequested]
) -> bool:
    """Whether the timeout asked payments again (for a charge or a refund), logged so."""
    asked = [event for event in outcome.events if isinstance(event, kind)]
    if not asked:
        return False
    if kind is RefundRequested:
        metrics.REFUNDS_REQUESTED_AGAIN.inc()
        logger.warning(
            "order %s: refund of payment %s requested again (refund pending since %s)",
            order.id,
            order.payment_id,
            order.updated_at.isoformat(),
        )
    else:
        logger.info(
            "order %s: payment requested again (attempt %d)",
            order.id,
            outcome.state.payment_requests,
        )
    return True
