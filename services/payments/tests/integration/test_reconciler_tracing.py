"""The reconciler's events continue the trace of the payment_requested that recorded the
payment: the order's trace, sampled or not as it was (docs/tracing.md)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from payments.events import OutboxEvent
from shared.testing.tracing import assert_job_continued, in_memory_tracing, in_trace, stored_trace
from shared.tracing import untraced

from .conftest import Payments
from .test_reconciler import left_pending_after_charge, order_of, reconcile


@pytest.mark.parametrize("sampled", [True, False], ids=["sampled", "unsampled"])
async def test_a_reconciled_payments_outcome_continues_its_requests_trace(
    sampled: bool, payments: Payments
) -> None:
    with in_memory_tracing() as exporter:
        with in_trace(sampled=sampled) as request:
            event = await left_pending_after_charge(payments)
        payment = await payments.payment_of(order_of(event))
        assert stored_trace(payment.trace_context) == request
        exporter.clear()
        with untraced():  # as the worker runs its periodic jobs
            await reconcile(payments)

    async with payments.sessionmaker() as session:
        (stored,) = await session.scalars(
            select(OutboxEvent.trace_context).where(
                OutboxEvent.event_type == "payments.payment_succeeded"
            )
        )
    assert_job_continued(stored, request, exporter, job_span="reconcile payment")
