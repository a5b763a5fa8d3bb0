"""Business rules of charges and their transaction boundaries (refunds: ``refunds``).

Charging follows one rule: record the attempt (committed), ask the provider outside any
transaction of ours, then record the answer and its event together: the first two are the
``prepare`` half of the request's handler, the last its ``apply`` half, in the consumer's
transaction (``shared.messaging.handlers``). Attempts made at the same moment share one
statement (``AttemptRecorder``), as a run's answers do. A crash anywhere leaves nothing, a
pending payment the redelivered request resumes (the order id is the provider's key), or
the settled payment with its event: no path charges twice. Every request is answered with
one outcome event, and a payment whose request never completes is settled by the
reconciler (``reconcile_batch``), which never charges. Detail: docs/payments.md, "Charging".
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments import metrics
from payments.events import outbox
from payments.payment import repository
from payments.payment.exceptions import PaymentNotFound
from payments.payment.models import FailureReason, Payment, PaymentStatus
from payments.payment.schemas import PaymentOut, PaymentPage
from payments.provider import (
    Charge,
    PaymentProvider,
    ProviderUnavailableError,
    RetryPolicy,
    with_retries,
)
from shared.auth import Principal
from shared.coalescing import Coalescer
from shared.contracts import Money
from shared.contracts.orders import PaymentRequested
from shared.contracts.payments import PaymentFailed, PaymentRefunded, PaymentSucceeded
from shared.cursors import CursorCodec
from shared.db import autocommit_connection, driver_connection
from shared.ids import new_id
from shared.messaging import Envelope

logger = logging.getLogger(__name__)


# --- reading ---------------------------------------------------------------------------------


async def get_payment(
    *, session: AsyncSession, payment_id: uuid.UUID, principal: Principal
) -> Payment:
    """The payment if the caller may see it (theirs, or any for an admin); 404 otherwise."""
    payment = await repository.get(session, payment_id)
    if payment is None or not (principal.is_admin or payment.user_id == principal.user_id):
        raise PaymentNotFound("No payment with this id.")
    return payment


PAYMENTS_CURSOR = "payments"


async def list_payments(
    *,
    session: AsyncSession,
    principal: Principal,
    order_id: uuid.UUID | None,
    cursors: CursorCodec,
    cursor: str | None,
    limit: int,
) -> PaymentPage:
    """The caller's payments (an admin's: everyone's), newest first, one page."""
    rows = await repository.page(
        session,
        user_id=None if principal.is_admin else principal.user_id,
        order_id=order_id,
        before=cursors.after_id(PAYMENTS_CURSOR, cursor),
        limit=limit + 1,
    )
    items, next_cursor = cursors.page(
        PAYMENTS_CURSOR, rows, limit=limit, position=lambda payment: payment.id
    )
    return PaymentPage(items=[PaymentOut.of(payment) for payment in items], next_cursor=next_cursor)


# --- charging --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    """What preparing a charge found: the pending payment and the provider's answer, or a
    payment already settled (``settled`` True), for which nothing is left to do."""

    payment: Payment
    failure: FailureReason | None = None
    charge_id: str | None = None
    settled: bool = False


async def prepare_charge(
    *,
    attempts: AttemptRecorder,
    provider: PaymentProvider,
    retry: RetryPolicy,
    store_currency: str,
    event: Envelope,
) -> ChargeOutcome:
    """``orders.payment_requested``, before the consumer's transaction: record the attempt
    (committed on its own, in one statement with the other attempts of the moment) and ask
    the provider. Idempotent: a redelivery finds the attempt, and the provider answers the
    order's key with the same charge."""
    request = event.payload(PaymentRequested)
    payment = await attempts.record(request)
    if payment.status != PaymentStatus.PENDING:
        logger.info(
            "payment %s of order %s already %s", payment.id, payment.order_id, payment.status
        )
        return ChargeOutcome(payment, settled=True)
    failure = _refusal(payment, store_currency=store_currency)
    charge_id: str | None = None
    if failure is None:
        failure, charge_id = await _ask_provider(
            provider=provider, retry=retry, payment=payment, token=request.payment_token
        )
    return ChargeOutcome(payment, failure, charge_id)


async def settle_charges(
    *, session: AsyncSession, prepared: Sequence[tuple[Envelope, ChargeOutcome]]
) -> list[Payment]:
    """``orders.payment_requested``, a run of them in the consumer's transaction (which holds
    their inbox keys): each pending payment takes the provider's answer and its event is
    written; one statement moves them all. A request whose payment was settled otherwise is
    answered with the stored outcome (``stored_outcome``). Each request's payment comes back,
    in order."""
    settled = await _settle_all(
        session,
        [
            Answer(outcome.payment, outcome.failure, outcome.charge_id, event)
            for event, outcome in prepared
            if not outcome.settled
        ],
    )
    answered: list[Payment] = []
    # Every request is answered. One that finds its payment settled (the order asks again:
    # its first answer may have been dead-lettered on the way to orders) gets the stored
    # outcome again, else orders would time the order out while the card stays charged.
    again: list[Envelope] = []
    for event, outcome in prepared:
        payment = outcome.payment
        if outcome.settled:
            current = payment
        elif payment.id in settled:
            answered.append(settled.pop(payment.id))
            continue
        else:
            # Another delivery of this order's request (or the reconciler, or a request
            # earlier in this run) settled it first and emitted the event.
            logger.info("payment %s was settled concurrently", payment.id)
            # Rare, so the ORM: a fresh read (the session holds no object of this payment).
            found = await repository.get(session, payment.id)
            assert found is not None
            current = found
        answered.append(current)
        again.append(event.caused(stored_outcome(current)))
    if again:
        await outbox.add_many(session, again)
        for announcement in again:
            metrics.OUTCOMES_REANNOUNCED.labels(announcement.type).inc()
            logger.info("%s announced again for a repeated request", announcement.type)
    return answered


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


class Answer(NamedTuple):
    """A pending payment, the provider's answer for it, and the request it answers (None
    when the reconciler found the answer)."""

    payment: Payment
    failure: FailureReason | None
    charge_id: str | None
    cause: Envelope | None


async def _settle_all(session: AsyncSession, answers: Sequence[Answer]) -> dict[uuid.UUID, Payment]:
    """Move each pending payment to its outcome and write that outcome's event, in the
    session's transaction: the payments moved, by id. One no longer pending is left out and
    gets no event; of a payment given twice, the first answer counts.

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
        )
        for payment_id, (_, failure, charge_id, _) in firsts.items()
    ]
    if not settlements:
        return {}
    settled = await repository.settle_pending(await driver_connection(session), settlements)
    events: list[Envelope] = []
    for payment_id, payment in settled.items():
        _, failure, _, cause = firsts[payment_id]
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
        events.append(cause.caused(outcome) if cause else Envelope.new(outcome))
        logger.info("payment %s of order %s %s", payment.id, payment.order_id, payment.status)
    await outbox.add_many(session, events)
    return settled


class AttemptRecorder:
    """Records charge attempts, committed: those made at the same moment (the prefetched
    requests arriving together) in one statement (``shared.coalescing``)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self._coalescer: Coalescer[uuid.UUID, PaymentRequested, Payment] = Coalescer(
            self._record_all, name="payments attempts"
        )

    async def record(self, request: PaymentRequested) -> Payment:
        """The order's payment, inserted as pending (and committed) unless it exists already."""
        return await self._coalescer.submit(request.order_id, request)

    async def _record_all(
        self, requests: Mapping[uuid.UUID, PaymentRequested]
    ) -> dict[uuid.UUID, Payment]:
        attempts = [
            repository.Attempt(
                payment_id=new_id(),
                order_id=request.order_id,
                user_id=request.user_id,
                amount=request.amount.amount,
                currency=request.amount.currency,
            )
            for request in requests.values()
        ]
        async with autocommit_connection(self.sessionmaker) as db:
            return await repository.record_attempts(db, attempts)


def _refusal(payment: Payment, *, store_currency: str) -> FailureReason | None:
    """Why the request cannot go to the provider at all, if it cannot."""
    if payment.currency != store_currency:
        return FailureReason.UNSUPPORTED_CURRENCY
    if payment.amount <= 0:
        return FailureReason.INVALID_AMOUNT
    return None


async def _ask_provider(
    *, provider: PaymentProvider, retry: RetryPolicy, payment: Payment, token: str
) -> tuple[FailureReason | None, str | None]:
    """The provider's answer as (failure, charge id); transient errors retried, then failed.

    When the retries run out the provider may still have charged: an answer lost on its way
    back looks like an unavailable provider. So it is asked what it holds under the order's
    key before the payment fails: a charge found is the answer; none found means none was
    made, and the payment fails as ``processing_error``. If it cannot say either, this
    raises: the request is redelivered (and, past its deliveries, the reconciler settles it),
    since failing it could leave a customer charged for a cancelled order.
    """
    amount = Money(amount=payment.amount, currency=payment.currency)
    key = str(payment.order_id)
    try:
        charge = await with_retries(
            lambda: provider.authorize_and_capture(
                idempotency_key=key, amount=amount, payment_token=token
            ),
            policy=retry,
            what=f"charge of order {payment.order_id}",
        )
    except ProviderUnavailableError:
        found = await provider.find_charge(idempotency_key=key)  # raises if it cannot say
        if found is None:
            return FailureReason.PROCESSING_ERROR, None
        logger.info("charge of order %s: the provider had charged; its answer was lost", key)
        return _answer(found)
    return _answer(charge)


def _answer(charge: Charge) -> tuple[FailureReason | None, str | None]:
    """A provider's charge as (failure, charge id): declined with its reason, or captured."""
    if charge.decline is not None:
        return FailureReason(charge.decline.value), None
    return None, charge.charge_id


# --- reconciling -----------------------------------------------------------------------------

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
    the token is not kept), settle the answered ones as requests are (``_settle_all``). No
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
        settled = await _settle_all(
            session,
            [
                Answer(payment, *answer, cause=None)
                for payment, answer in zip(claimed, answers, strict=True)
                if answer is not None
            ],
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
    refusal = _refusal(payment, store_currency=store_currency)
    if refusal is not None:
        return refusal, None  # its request never went to the provider: the same refusal
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
    return _answer(charge)
