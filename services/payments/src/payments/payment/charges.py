"""The charge path of ``orders.payment_requested`` (refunds: ``refunds``).

Charging follows one rule: record the attempt (committed, ``attempts``), ask the provider
outside any transaction of ours, then record the answer and its event together
(``settlement``): the first two are the ``prepare`` half of the request's handler, the last
its ``apply`` half, in the consumer's transaction (``shared.messaging.handlers``). A crash
anywhere leaves nothing, a pending payment the redelivered request resumes (the order id is
the provider's key), or the settled payment with its event: no path charges twice. Every
request is answered with one outcome event, except one that found no charge while another
attempt for the order was recorded (``settlement.Answer.sole_attempt_only``); that payment,
and any whose request never completes, is settled by the reconciler
(``payments.reconciler``), which never charges. Detail: docs/payments.md, "Charging".
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from payments import metrics
from payments.events import outbox
from payments.payment import repository
from payments.payment.attempts import AttemptRecorder
from payments.payment.models import FailureReason, Payment, PaymentStatus
from payments.payment.settlement import (
    Answer,
    provider_answer,
    refusal,
    settle_all,
    stored_outcome,
)
from payments.provider import PaymentProvider, ProviderUnavailableError, RetryPolicy, with_retries
from shared.contracts import Money
from shared.contracts.orders import PaymentRequested
from shared.messaging import Envelope

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    """What preparing a charge found: the pending payment and the provider's answer, or a
    payment already settled (``settled`` True), for which nothing is left to do.
    ``from_lookup``: the answer is a lookup's "no charge" after the charge calls failed
    (``settlement.Answer.sole_attempt_only``)."""

    payment: Payment
    failure: FailureReason | None = None
    charge_id: str | None = None
    settled: bool = False
    from_lookup: bool = False


ProviderAnswer = tuple[FailureReason | None, str | None, bool]
"""(failure, charge id, from a lookup): what one conversation with the provider concluded."""


class ProviderConversations:
    """The provider conversations this process has in flight, one per order: a request for
    an order whose charge is being asked already joins that conversation and takes its
    answer. Two conversations for one order could end apart, one in a charge and the other,
    its calls failing meanwhile, in a lookup that does not see that charge yet."""

    def __init__(self) -> None:
        self._running: dict[uuid.UUID, asyncio.Future[ProviderAnswer]] = {}

    async def ask(
        self, order_id: uuid.UUID, conversation: Callable[[], Awaitable[ProviderAnswer]]
    ) -> ProviderAnswer:
        running = self._running.get(order_id)
        if running is None:
            running = asyncio.ensure_future(conversation())
            self._running[order_id] = running
            running.add_done_callback(lambda _: self._running.pop(order_id, None))
        # Shielded: a cancelled request must not cancel the answer another one waits for.
        return await asyncio.shield(running)


async def prepare_charge(
    *,
    attempts: AttemptRecorder,
    conversations: ProviderConversations,
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
    failure = refusal(payment, store_currency=store_currency)
    if failure is not None:
        return ChargeOutcome(payment, failure)
    failure, charge_id, from_lookup = await conversations.ask(
        payment.order_id,
        lambda: _ask_provider(
            provider=provider, retry=retry, payment=payment, token=request.payment_token
        ),
    )
    return ChargeOutcome(payment, failure, charge_id, from_lookup=from_lookup)


async def settle_charges(
    *, session: AsyncSession, prepared: Sequence[tuple[Envelope, ChargeOutcome]]
) -> list[Payment]:
    """``orders.payment_requested``, a run of them in the consumer's transaction (which holds
    their inbox keys): each pending payment takes the provider's answer and its event is
    written; one statement moves them all. A request whose payment was settled otherwise is
    answered with the stored outcome (``stored_outcome``). Each request's payment comes back,
    in order."""
    settled = await settle_all(
        session,
        [
            Answer(
                outcome.payment,
                outcome.failure,
                outcome.charge_id,
                event,
                sole_attempt_only=outcome.from_lookup,
            )
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
        if payment.id in settled:
            answered.append(settled.pop(payment.id))
            continue
        # Settled before this request (its status as prepared may be stale by now: refunded
        # meanwhile, say), by another delivery, the reconciler or a request earlier in this
        # run; or left pending. Rare, so the ORM: a fresh read (the session holds no object of
        # this payment).
        current = await repository.get(session, payment.id)
        assert current is not None
        answered.append(current)
        if current.status == PaymentStatus.PENDING:
            # A lookup's "no charge" while another attempt was recorded: that attempt's charge
            # may still land. The reconciler settles it once every attempt has ended.
            logger.warning(
                "payment %s of order %s: no charge found, but another attempt may still be "
                "charging; left pending for the reconciler",
                payment.id,
                payment.order_id,
            )
            continue
        if not outcome.settled:
            logger.info("payment %s was settled concurrently", payment.id)
        again.append(event.caused(stored_outcome(current)))
    if again:
        await outbox.add_many(session, again)
        for announcement in again:
            metrics.OUTCOMES_REANNOUNCED.labels(announcement.type).inc()
            logger.info("%s announced again for a repeated request", announcement.type)
    return answered


async def _ask_provider(
    *, provider: PaymentProvider, retry: RetryPolicy, payment: Payment, token: str
) -> ProviderAnswer:
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
            return FailureReason.PROCESSING_ERROR, None, True
        logger.info("charge of order %s: the provider had charged; its answer was lost", key)
        return *provider_answer(found), False
    return *provider_answer(charge), False
