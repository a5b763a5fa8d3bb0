"""Refunds: the full captured amount, once per payment, however long the provider is away.

A refund request asks the provider at once, with a few quick retries, keyed by the payment
id (any number of asks makes one refund). If the provider stays unavailable the refund is
recorded as owed and the request acknowledged (the broker's few quick redeliveries would
dead-letter it); the refund reconciler (``reconcile_refunds_batch``) asks again with
backoff and jitter until the provider answers. A refusal ends the refund as ``refused``,
for an operator. Whichever path records the refund first moves the payment to ``refunded``
and writes ``payments.payment_refunded``, conditionally, so it is recorded once. A request
for a payment refunded already is answered with its ``payment_refunded`` again, without
asking the provider; one for a refund owed is left to the reconciler. Detail:
docs/payments.md ("Refunds: retry policy", "Repeated refund requests").
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments import metrics
from payments.backoff import doubling_pause
from payments.config import PaymentsSettings
from payments.events import outbox
from payments.payment import repository
from payments.payment.models import OwedRefund, Payment, PaymentStatus, RefundStatus
from payments.payment.settlement import stored_outcome
from payments.provider import (
    PaymentProvider,
    ProviderUnavailableError,
    Refund,
    RefundRefusedError,
    RetryPolicy,
    with_retries,
)
from shared.contracts import Money
from shared.contracts.orders import RefundRequested
from shared.contracts.payments import PaymentRefunded
from shared.messaging import Envelope
from shared.tracing.messaging import JobTraces

logger = logging.getLogger(__name__)

PROVIDER_TIMEOUT_SECONDS = 10.0
"""A reconciler's refund call slower than this counts as unavailable: the batch's row locks
(and its transaction) are held no longer than about this."""


@dataclass(frozen=True, slots=True)
class RefundBackoff:
    """The pause before the n-th retry of an owed refund: ``base * 2**(n-1)``, capped, then
    jittered down by up to half, so refunds owed since one outage do not retry in step."""

    base_seconds: float
    max_seconds: float
    random: Callable[[], float] = random.random

    @classmethod
    def from_settings(cls, settings: PaymentsSettings) -> RefundBackoff:
        return cls(
            base_seconds=settings.refund_backoff_base_seconds,
            max_seconds=settings.refund_backoff_max_seconds,
        )

    def pause(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` (1 or more) failed calls."""
        ceiling = doubling_pause(
            failed_attempts - 1, initial=self.base_seconds, cap=self.max_seconds
        )
        return ceiling / 2 + self.random() * ceiling / 2


# --- the request -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    """What preparing a refund found: the provider's refund, or why it is owed or refused,
    or that it was made already; nothing of these when the request does not apply or the
    refund is owed already (the reconciler's)."""

    payment: Payment | None
    refund: Refund | None = None
    owed: str | None = None  # the provider could not be asked: the reconciler retries
    refused: str | None = None  # the provider will never make this refund
    refunded_already: bool = False  # announced again, the provider not asked


async def prepare_refund(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    retry: RetryPolicy,
    event: Envelope,
) -> RefundOutcome:
    """``orders.refund_requested``, before the consumer's transaction: ask the provider to
    refund the full captured amount, with the payment id as key (a redelivery after a crash
    gets the same refund back). A request that cannot apply is skipped with a log line."""
    request = event.payload(RefundRequested)
    async with sessionmaker() as session:
        payment, refund_status = await repository.get_for_refund(session, request.payment_id)
    if payment is None or payment.order_id != request.order_id:
        logger.warning(
            "refund for order %s skipped: no payment %s of that order",
            request.order_id,
            request.payment_id,
        )
        return RefundOutcome(None)
    if payment.status == PaymentStatus.REFUNDED:
        # Refunded already: orders asks again because it has not heard so (the announcement
        # may have been lost). The provider is not asked again; the refund is announced again.
        logger.info("payment %s already refunded: announced again", payment.id)
        return RefundOutcome(payment, refunded_already=True)
    if payment.status != PaymentStatus.SUCCEEDED or payment.provider_charge_id is None:
        logger.warning("refund of payment %s skipped: it is %s", payment.id, payment.status)
        return RefundOutcome(payment)
    if refund_status is RefundStatus.OWED:
        # The reconciler retries it on its backoff; a request (orders asks again every few
        # minutes while it waits) adds no provider calls to an outage. It announces the
        # refund when it is made. (A refused refund is asked again: see the module doc.)
        logger.info("refund of payment %s is owed: left to the refund reconciler", payment.id)
        return RefundOutcome(None)
    captured = Money(amount=payment.amount, currency=payment.currency)
    if request.amount != captured:
        # The captured amount is what the customer paid; a refund always returns all of it.
        logger.warning(
            "refund of payment %s asked for %d %s; refunding the captured %d %s",
            payment.id,
            request.amount.amount,
            request.amount.currency,
            captured.amount,
            captured.currency,
        )
    charge_id = payment.provider_charge_id
    try:
        refund = await with_retries(
            lambda: provider.refund(
                idempotency_key=str(payment.id), charge_id=charge_id, amount=captured
            ),
            policy=retry,
            what=f"refund of payment {payment.id}",
        )
    except ProviderUnavailableError as exc:
        return RefundOutcome(payment, owed=str(exc) or type(exc).__name__)
    except RefundRefusedError as exc:
        return RefundOutcome(payment, refused=str(exc) or type(exc).__name__)
    return RefundOutcome(payment, refund)


async def record_refund(
    *,
    session: AsyncSession,
    event: Envelope,
    outcome: RefundOutcome,
    backoff: RefundBackoff,
    now: datetime | None = None,
) -> None:
    """``orders.refund_requested``, in the consumer's transaction: the refund recorded and
    announced, or recorded as owed (for the reconciler) or refused; then acknowledged."""
    payment = outcome.payment
    if payment is None:
        return
    cause = _Cause(event.correlation_id, str(event.id))
    if outcome.refunded_already:
        await _announce_again(session, event, payment)
    elif outcome.refund is not None:
        if not await _complete(session, payment, outcome.refund, cause):
            # Another request (or the reconciler) recorded it first and announced it: this
            # request is answered too. Rare, so a fresh read for the refund as recorded.
            refunded = await repository.get(session, payment.id)
            assert refunded is not None
            await _announce_again(session, event, refunded)
        metrics.REFUND_ATTEMPTS.labels("request", "refunded").inc()
    elif outcome.owed is not None:
        due = (now or datetime.now(UTC)) + timedelta(seconds=backoff.pause(1))
        await repository.owe_refund(
            session,
            payment_id=payment.id,
            next_attempt_at=due,
            error=outcome.owed,
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
        )
        metrics.REFUND_ATTEMPTS.labels("request", "owed").inc()
        logger.warning(
            "refund of payment %s owed: the provider is unavailable (%s); retried from %s",
            payment.id,
            outcome.owed,
            due.isoformat(),
        )
    elif outcome.refused is not None:
        await repository.refuse_refund(
            session,
            payment_id=payment.id,
            error=outcome.refused,
            correlation_id=cause.correlation_id,
            causation_id=cause.causation_id,
        )
        metrics.REFUND_ATTEMPTS.labels("request", "refused").inc()
        logger.error(
            "refund of payment %s refused by the provider: %s", payment.id, outcome.refused
        )


async def _announce_again(session: AsyncSession, event: Envelope, payment: Payment) -> None:
    """Answer a refund request for a payment refunded already with its ``payment_refunded``
    (its payment id, order and refunded amount), caused by the request."""
    announcement = event.caused(stored_outcome(payment))
    await outbox.add(session, announcement)
    metrics.OUTCOMES_REANNOUNCED.labels(announcement.type).inc()
    logger.info("%s of payment %s announced again", announcement.type, payment.id)


@dataclass(frozen=True, slots=True)
class _Cause:
    correlation_id: str | None
    causation_id: str | None


async def _complete(
    session: AsyncSession,
    payment: Payment,
    refund: Refund,
    cause: _Cause,
    traces: JobTraces | None = None,
) -> bool:
    """Record the provider's refund: the payment refunded and announced, once (True), or
    nothing when it was refunded already. Any owed record of it is closed either way. With
    ``traces`` (the reconciler's), the announcement continues the trace of the payment's
    request: the order's."""
    await repository.close_owed_refund(session, payment_id=payment.id)
    refunded = await repository.mark_refunded(
        session,
        payment_id=payment.id,
        refunded_amount=refund.amount.amount,
        provider_refund_id=refund.refund_id,
    )
    if refunded is None:
        logger.info("payment %s was refunded concurrently", payment.id)
        return False
    announcement = PaymentRefunded(
        payment_id=refunded.id,
        order_id=refunded.order_id,
        amount=Money(amount=refunded.refunded_amount, currency=refunded.currency),
    )
    event = Envelope.new(
        announcement, correlation_id=cause.correlation_id, causation_id=cause.causation_id
    )
    if traces is not None:
        traces.emit(payment.trace_context, [event])
    await outbox.add(session, event)
    logger.info("payment %s refunded", refunded.id)
    return True


# --- the reconciler --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundBatch:
    claimed: int
    refunded: int
    still_owed: int
    refused: int


async def reconcile_refunds_batch(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    backoff: RefundBackoff,
    now: datetime,
    limit: int,
) -> RefundBatch:
    """Retry one batch of owed refunds due by ``now``.

    One transaction: lock the batch (SKIP LOCKED: reconcilers on several workers share the
    work and never ask about one refund at once), ask the provider for each refund side by
    side under the payment's key (so a retry after a lost answer gets the same refund), and
    record each answer: refunded and announced, owed again after a longer pause, or refused.
    """
    async with sessionmaker() as session, session.begin():
        claimed = await repository.claim_due_refunds(session, due_by=now, limit=limit)
        if not claimed:
            return RefundBatch(0, 0, 0, 0)
        answers = await asyncio.gather(*(_ask_again(payment, provider) for _, payment in claimed))
        refunded = still_owed = refused = 0
        with JobTraces("reconcile refund") as traces:
            for (owed, payment), answer in zip(claimed, answers, strict=True):
                cause = _Cause(owed.correlation_id, owed.causation_id)
                if isinstance(answer, Refund):
                    refunded += await _complete(session, payment, answer, cause, traces)
                    metrics.REFUND_ATTEMPTS.labels("reconciler", "refunded").inc()
                elif answer is _ALREADY_REFUNDED:
                    await repository.close_owed_refund(session, payment_id=payment.id)
                elif isinstance(answer, RefundRefusedError):
                    _refuse(owed, str(answer) or type(answer).__name__, now=now)
                    refused += 1
                else:
                    _owe_again(owed, answer, backoff=backoff, now=now)
                    still_owed += 1
    return RefundBatch(len(claimed), refunded, still_owed, refused)


_ALREADY_REFUNDED = object()


async def _ask_again(payment: Payment, provider: PaymentProvider) -> object:
    """The provider's refund, or what stands in its way (an exception, not raised)."""
    if payment.status == PaymentStatus.REFUNDED:
        return _ALREADY_REFUNDED  # a request made it meanwhile, and announced it
    if payment.status != PaymentStatus.SUCCEEDED or payment.provider_charge_id is None:
        return RefundRefusedError(f"the payment is {payment.status}, not succeeded")
    try:
        async with asyncio.timeout(PROVIDER_TIMEOUT_SECONDS):
            return await provider.refund(
                idempotency_key=str(payment.id),
                charge_id=payment.provider_charge_id,
                amount=Money(amount=payment.amount, currency=payment.currency),
            )
    except Exception as exc:  # unavailable, slow or broken: kept owed, unless refused
        return exc


def _owe_again(owed: OwedRefund, error: object, *, backoff: RefundBackoff, now: datetime) -> None:
    owed.attempts += 1
    owed.next_attempt_at = now + timedelta(seconds=backoff.pause(owed.attempts))
    owed.last_error = repr(error)
    owed.updated_at = now
    metrics.REFUND_ATTEMPTS.labels("reconciler", "owed").inc()
    logger.warning(
        "refund of payment %s still owed after %d attempts (%r); next attempt at %s",
        owed.payment_id,
        owed.attempts,
        error,
        owed.next_attempt_at.isoformat(),
    )


def _refuse(owed: OwedRefund, reason: str, *, now: datetime) -> None:
    owed.status = RefundStatus.REFUSED.value
    owed.attempts += 1
    owed.next_attempt_at = None
    owed.last_error = reason
    owed.updated_at = now
    metrics.REFUND_ATTEMPTS.labels("reconciler", "refused").inc()
    logger.error("refund of payment %s refused by the provider: %s", owed.payment_id, reason)


async def measure_refund_backlog(
    *, sessionmaker: async_sessionmaker[AsyncSession], now: datetime | None = None
) -> repository.RefundBacklog:
    """The refunds owed and refused now, also set on the metrics."""
    async with sessionmaker() as session:
        backlog = await repository.refund_backlog(session)
    oldest = backlog.oldest_owed_since
    age = ((now or datetime.now(UTC)) - oldest).total_seconds() if oldest else 0.0
    metrics.REFUNDS_OWED.set(backlog.owed)
    metrics.REFUND_OLDEST_OWED_AGE.set(max(age, 0.0))
    metrics.REFUNDS_REFUSED.set(backlog.refused)
    return backlog
