"""The reconcilers: settle payments left pending, periodic jobs of every worker.

A payment stays pending when its request never completes after the attempt was recorded: the
request dead-lettered (its settle kept failing) after the provider had charged, say. Nothing
else would then announce the outcome, and orders would cancel the order without refunding the
charge. Every ``reconcile_interval_seconds`` the reconciler takes the payments no request has
touched for ``reconcile_after_seconds`` and settles them from what the provider remembers
under the order's key (``reconcile_batch``); a late ``payment_succeeded`` on a
cancelled order makes orders refund it.

Several workers may reconcile at once: batches are claimed with ``FOR UPDATE SKIP LOCKED``, and
the settle is conditional on ``pending``, so each payment is settled, and announced, once.
The refund reconciler does the same for refunds owed (``payments.payment.refunds``), every
``refund_reconcile_interval_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments.config import PaymentsSettings
from payments.payment import refunds, repository
from payments.payment.models import FailureReason, Payment
from payments.payment.settlement import Answer, provider_answer, refusal, settle_all
from payments.provider import PaymentProvider
from shared.db import driver_connection
from shared.tracing.messaging import JobTraces

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    settled: int
    left_pending: int  # the provider could not tell: the next round asks again


async def reconcile_once(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    settings: PaymentsSettings,
    now: datetime | None = None,
) -> ReconcileResult:
    """One pass over every payment left pending, batch by batch."""
    untouched_since = (now or datetime.now(UTC)) - timedelta(
        seconds=settings.reconcile_after_seconds
    )
    settled = left_pending = 0
    cursor = None
    while True:
        batch = await reconcile_batch(
            sessionmaker=sessionmaker,
            provider=provider,
            store_currency=settings.store_currency,
            untouched_since=untouched_since,
            after=cursor,
            limit=settings.reconcile_batch_size,
        )
        settled += batch.settled
        left_pending += batch.claimed - batch.settled
        # Past the batch, not from the start again: those left pending are not asked twice.
        if batch.claimed < settings.reconcile_batch_size or batch.cursor is None:
            return ReconcileResult(settled=settled, left_pending=left_pending)
        cursor = batch.cursor


LOOKUP_TIMEOUT_SECONDS = 10.0
"""A provider lookup slower than this counts as unavailable: the batch's row locks (which a
late request for one of its orders waits on) are held no longer than about this."""


@dataclass(frozen=True, slots=True)
class ReconciledBatch:
    claimed: int
    settled: int  # the others stay pending: the provider could not tell what became of them
    cursor: tuple[datetime, uuid.UUID] | None  # the last payment claimed; None if none was


async def reconcile_batch(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    store_currency: str,
    untouched_since: datetime,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> ReconciledBatch:
    """Settle one batch of payments left pending, those no request has touched since
    ``untouched_since`` (the request dead-lettered, say, after the provider charged), with
    their events, so that orders learns the outcome and refunds a charge it no longer wants.

    One transaction: lock the batch (SKIP LOCKED: reconcilers share the work), ask the
    provider what became of each charge under the order's key (side by side, never charging:
    the token is not kept), settle the answered ones as requests are (``settle_all``). No
    charge under the key means none was made, and none can be now: failed as
    ``processing_error``. A payment the provider cannot answer for stays pending, for the next
    round. Unlike a request, this asks the provider inside the transaction: its row locks make
    a late request for one of these orders wait (its attempt then finds the payment settled
    and charges nothing) instead of charging just after the lookup found no charge. Those
    lookups are few, and bounded by ``limit`` and ``LOOKUP_TIMEOUT_SECONDS``.
    """
    async with sessionmaker() as session, session.begin():
        claimed = await repository.claim_stale_pending(
            await driver_connection(session),
            untouched_since=untouched_since,
            after=after or repository.CURSOR_START,
            limit=limit,
        )
        if not claimed:
            return ReconciledBatch(claimed=0, settled=0, cursor=None)
        answers = await asyncio.gather(
            *(_what_became_of(payment, provider, store_currency) for payment in claimed)
        )
        with JobTraces("reconcile payment") as traces:
            settled = await settle_all(
                session,
                [
                    Answer(payment, *answer, cause=None)
                    for payment, answer in zip(claimed, answers, strict=True)
                    if answer is not None
                ],
                traces=traces,
            )
        for payment in claimed:
            done = settled.get(payment.id)
            if done is not None:
                logger.warning(
                    "payment %s of order %s was left pending since %s: reconciled as %s",
                    done.id,
                    done.order_id,
                    payment.updated_at.isoformat(),
                    done.failure_reason or done.status,
                )
    last = claimed[-1]
    return ReconciledBatch(
        claimed=len(claimed), settled=len(settled), cursor=(last.updated_at, last.id)
    )


async def _what_became_of(
    payment: Payment, provider: PaymentProvider, store_currency: str
) -> tuple[FailureReason | None, str | None] | None:
    """The outcome of a pending payment's charge as (failure, charge id); None when the
    provider cannot tell now."""
    refused = refusal(payment, store_currency=store_currency)
    if refused is not None:
        return refused, None  # its request never went to the provider: the same refusal
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
            charge = await provider.find_charge(idempotency_key=str(payment.order_id))
    except Exception as exc:  # unavailable, slow or broken: the next round asks again
        logger.warning(
            "payment %s of order %s left pending: the provider could not be asked: %r",
            payment.id,
            payment.order_id,
            exc,
        )
        return None
    if charge is None:
        return FailureReason.PROCESSING_ERROR, None
    return provider_answer(charge)


@dataclass(frozen=True, slots=True)
class RefundReconcileResult:
    refunded: int
    still_owed: int  # retried later, after a longer pause
    refused: int


async def reconcile_refunds_once(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    settings: PaymentsSettings,
    backoff: refunds.RefundBackoff | None = None,
    now: datetime | None = None,
) -> RefundReconcileResult:
    """One pass over every refund owed and due, batch by batch. A refund still owed is due
    again only later, so a pass does not ask about it twice."""
    now = now or datetime.now(UTC)
    backoff = backoff or refunds.RefundBackoff.from_settings(settings)
    refunded = still_owed = refused = 0
    while True:
        batch = await refunds.reconcile_refunds_batch(
            sessionmaker=sessionmaker,
            provider=provider,
            backoff=backoff,
            now=now,
            limit=settings.reconcile_batch_size,
        )
        refunded += batch.refunded
        still_owed += batch.still_owed
        refused += batch.refused
        if batch.claimed < settings.reconcile_batch_size:
            return RefundReconcileResult(refunded, still_owed, refused)


async def reconcile(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    settings: PaymentsSettings,
) -> None:
    """One run of the worker's payment reconciliation job: ``reconcile_once``, logged."""
    result = await reconcile_once(sessionmaker=sessionmaker, provider=provider, settings=settings)
    if result.settled or result.left_pending:
        logger.info(
            "reconciled %d payments left pending; %d still pending",
            result.settled,
            result.left_pending,
        )


async def reconcile_refunds(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: PaymentProvider,
    settings: PaymentsSettings,
    backoff: refunds.RefundBackoff,
) -> None:
    """One run of the worker's refund reconciliation job: ``reconcile_refunds_once``,
    logged, then the backlog of refunds owed measured."""
    result = await reconcile_refunds_once(
        sessionmaker=sessionmaker, provider=provider, settings=settings, backoff=backoff
    )
    if result.refunded or result.refused:
        logger.info(
            "refund reconciler: %d owed refunds made, %d refused, %d still owed",
            result.refunded,
            result.refused,
            result.still_owed,
        )
    await refunds.measure_refund_backlog(sessionmaker=sessionmaker)
