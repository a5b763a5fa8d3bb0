"""Settling a charge: what its outcome is, the one write that settles it, and the event that
announces it.

Requests (``charges``) and the reconciler (``payments.reconciler``) both settle through
``settle_all``, so a payment is settled and announced the same way whoever finds its answer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from payments.events import outbox
from payments.payment import repository
from payments.payment.models import FailureReason, Payment, PaymentStatus
from payments.provider import Charge
from shared.contracts import Money
from shared.contracts.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from shared.db import driver_connection
from shared.messaging import Envelope
from shared.tracing.messaging import JobTraces

logger = logging.getLogger(__name__)


class Answer(NamedTuple):
    """A pending payment, the provider's answer for it, and the request it answers (None
    when the reconciler found the answer).

    ``sole_attempt_only``: the answer is "no charge" told by a lookup after the charge calls
    failed. Another request's charge call for the same order may still be in flight then, and
    the lookup cannot see it; so such an answer settles the payment only if no other attempt
    was ever recorded for it. Otherwise it stays pending, for the reconciler, which asks once
    every attempt has ended.
    """

    payment: Payment
    failure: FailureReason | None
    charge_id: str | None
    cause: Envelope | None
    sole_attempt_only: bool = False


def refusal(payment: Payment, *, store_currency: str) -> FailureReason | None:
    """Why the request cannot go to the provider at all, if it cannot."""
    if payment.currency != store_currency:
        return FailureReason.UNSUPPORTED_CURRENCY
    if payment.amount <= 0:
        return FailureReason.INVALID_AMOUNT
    return None


def provider_answer(charge: Charge) -> tuple[FailureReason | None, str | None]:
    """A provider's charge as (failure, charge id): declined with its reason, or captured."""
    if charge.decline is not None:
        return FailureReason(charge.decline.value), None
    return None, charge.charge_id


async def settle_all(
    session: AsyncSession, answers: Sequence[Answer], *, traces: JobTraces | None = None
) -> dict[uuid.UUID, Payment]:
    """Move each pending payment to its outcome and write that outcome's event, in the
    session's transaction: the payments moved, by id. One no longer pending is left out and
    gets no event; of a payment given twice, the first answer counts. With ``traces`` (the
    reconciler's), each event continues the trace its payment was requested in.

    The one place a charge is settled, by requests (``cause``: the event is its follow-up)
    or by the reconciler. One statement moves them all. It is conditional on ``pending``, so
    however many settle one payment at once, one of them moves it and writes its event.
    """
    firsts: dict[uuid.UUID, Answer] = {}
    for answer in answers:
        firsts.setdefault(answer.payment.id, answer)
    settlements = [
        repository.Settlement(
            payment_id=payment_id,
            status=PaymentStatus.FAILED if failure else PaymentStatus.SUCCEEDED,
            failure_reason=failure.value if failure else None,
            provider_charge_id=charge_id,
            sole_attempt_only=sole_attempt_only,
        )
        for payment_id, (_, failure, charge_id, _, sole_attempt_only) in firsts.items()
    ]
    if not settlements:
        return {}
    settled = await repository.settle_pending(await driver_connection(session), settlements)
    events: list[Envelope] = []
    for payment_id, payment in settled.items():
        _, failure, _, cause, _ = firsts[payment_id]
        outcome: PaymentSucceeded | PaymentFailed
        if failure is None:
            outcome = PaymentSucceeded(
                payment_id=payment.id,
                order_id=payment.order_id,
                amount=Money(amount=payment.amount, currency=payment.currency),
            )
        else:
            outcome = PaymentFailed(
                payment_id=payment.id, order_id=payment.order_id, reason=failure.value
            )
        event = cause.caused(outcome) if cause else Envelope.new(outcome)
        if traces is not None:
            traces.emit(firsts[payment_id].payment.trace_context, [event])
        events.append(event)
        logger.info("payment %s of order %s %s", payment.id, payment.order_id, payment.status)
    await outbox.add_many(session, events)
    return settled


def stored_outcome(payment: Payment) -> PaymentSucceeded | PaymentFailed | PaymentRefunded:
    """The event that announces where a settled payment stands.

    A refunded payment answers ``payment_refunded``, not the success it once had: the money
    went back, so no order may be confirmed on it.
    """
    amount = Money(amount=payment.amount, currency=payment.currency)
    if payment.status == PaymentStatus.SUCCEEDED:
        return PaymentSucceeded(payment_id=payment.id, order_id=payment.order_id, amount=amount)
    if payment.status == PaymentStatus.REFUNDED:
        return PaymentRefunded(
            payment_id=payment.id,
            order_id=payment.order_id,
            amount=Money(amount=payment.refunded_amount, currency=payment.currency),
        )
    if payment.status == PaymentStatus.FAILED:
        return PaymentFailed(
            payment_id=payment.id,
            order_id=payment.order_id,
            reason=payment.failure_reason or FailureReason.PROCESSING_ERROR.value,
        )
    raise ValueError(f"payment {payment.id} is not settled: {payment.status}")
