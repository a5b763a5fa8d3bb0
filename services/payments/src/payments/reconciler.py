"""The reconcilers: settle payments left pending, periodic jobs of every worker.

A payment stays pending when its request never completes after the attempt was recorded: the
request dead-lettered (its settle kept failing) after the provider had charged, say. Nothing
else would then announce the outcome, and orders would cancel the order without refunding the
charge. Every ``reconcile_interval_seconds`` the reconciler takes the payments no request has
touched for ``reconcile_after_seconds`` and settles them from what the provider remembers
under the order's key (``service.reconcile_batch``); a late ``payment_succeeded`` on a
cancelled order makes orders refund it.

Several workers may reconcile at once: batches are claimed with ``FOR UPDATE SKIP LOCKED``, and
the settle is conditional on ``pending``, so each payment is settled, and announced, once.
The refund reconciler does the same for refunds owed (``payments.payment.refunds``), every
``refund_reconcile_interval_seconds``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments.config import PaymentsSettings
from payments.payment import refunds, service
from payments.provider import PaymentProvider

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
        batch = await service.reconcile_batch(
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
