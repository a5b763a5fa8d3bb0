"""The shipped fake provider: deterministic on the test token, idempotent by key, durable.

Tokens: ``tok_visa`` and ``tok_mastercard`` succeed; ``tok_chargeDeclined`` and
``tok_insufficientFunds`` are declined; ``tok_processingError`` always fails transiently;
anything else is an invalid payment method. Settings can add latency and a rate of transient
failures; half of those simulated failures lose the answer *after* the charge was made, the
case a caller's idempotency key exists for. ``outage`` makes every call fail for a while (an
outage of the provider, for fault tests).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

import asyncpg
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments.config import PaymentsSettings
from payments.provider.base import (
    Charge,
    DeclineCode,
    ProviderUnavailableError,
    Refund,
    RefundRefusedError,
)
from payments.provider.models import FakeProviderCharge, FakeProviderRefund
from shared.coalescing import Coalescer
from shared.contracts import Money
from shared.db import autocommit_connection
from shared.ids import new_id

SUCCEEDED = "succeeded"


class _Transient(Enum):
    PROCESSING_ERROR = "processing_error"


TOKEN_OUTCOMES: dict[str, DeclineCode | _Transient | None] = {
    "tok_visa": None,
    "tok_mastercard": None,
    "tok_chargeDeclined": DeclineCode.CARD_DECLINED,
    "tok_insufficientFunds": DeclineCode.INSUFFICIENT_FUNDS,
    "tok_processingError": _Transient.PROCESSING_ERROR,
}


def decline_for(payment_token: str) -> DeclineCode | None:
    """The decline a token gets (None: it succeeds); raise for a transient token."""
    outcome = TOKEN_OUTCOMES.get(payment_token, DeclineCode.INVALID_PAYMENT_METHOD)
    if isinstance(outcome, _Transient):
        # The message names no token: callers may log it.
        raise ProviderUnavailableError("the provider reported a processing error")
    return outcome


# The charge stored under each key: this one, inserted now, or the first one; one statement
# for many keys (distinct), inserted in key order so that two such statements cannot
# deadlock.
CHARGE_ONCE = """
WITH asked AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])
        AS a(idempotency_key, charge_id, amount, currency, outcome)
), inserted AS (
    INSERT INTO payments.fake_provider_charges
        (idempotency_key, charge_id, amount, currency, outcome)
    SELECT * FROM asked ORDER BY idempotency_key
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key, charge_id, amount, currency, outcome
)
SELECT * FROM inserted
UNION ALL
SELECT c.idempotency_key, c.charge_id, c.amount, c.currency, c.outcome
FROM payments.fake_provider_charges AS c JOIN asked USING (idempotency_key)
WHERE NOT EXISTS (SELECT 1 FROM inserted AS i WHERE i.idempotency_key = c.idempotency_key)
"""

# The charge stored under the key, if any: a lookup by primary key, writing nothing.
FIND_CHARGE = """
SELECT charge_id, amount, currency, outcome
FROM payments.fake_provider_charges
WHERE idempotency_key = $1
"""


@dataclass(frozen=True, slots=True)
class _Asked:
    """A charge asked for under a key: the one stored unless the key holds one already."""

    charge_id: str
    amount: Money
    outcome: str


async def _charge_each_once(
    db: asyncpg.Connection, asked: Mapping[str, _Asked]
) -> dict[str, asyncpg.Record]:
    """The key decides: a concurrent or repeated request gets the first answer, durably (the
    statement, run alone, has committed when it returns)."""
    # Twice at most: a concurrent first request with a key still in flight makes ours wait,
    # then do nothing, and the SELECT half reads the snapshot from before that commit: no
    # row for that key. Run again, the statement sees the committed charge (charges are
    # never deleted).
    stored: dict[str, asyncpg.Record] = {}
    for _ in range(2):
        missing = [key for key in asked if key not in stored]
        if not missing:
            break
        rows = await db.fetch(
            CHARGE_ONCE,
            missing,
            [asked[key].charge_id for key in missing],
            [asked[key].amount.amount for key in missing],
            [asked[key].amount.currency for key in missing],
            [asked[key].outcome for key in missing],
        )
        stored.update((row["idempotency_key"], row) for row in rows)
    return stored  # a key still missing fails its caller (the coalescer's LookupError)


def _charge(stored: asyncpg.Record) -> Charge:
    """The answer a stored charge stands for."""
    return Charge(
        charge_id=stored["charge_id"],
        amount=Money(amount=stored["amount"], currency=stored["currency"]),
        decline=None if stored["outcome"] == SUCCEEDED else DeclineCode(stored["outcome"]),
    )


class FakeProvider:
    """A ``PaymentProvider`` whose memory is two tables of the payments schema."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        latency_seconds: float = 0.0,
        failure_rate: float = 0.0,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.latency_seconds = latency_seconds
        self.failure_rate = failure_rate
        self._random = random_source
        self._down_until = 0.0  # time.monotonic() before which every call fails
        # The charges asked for at the same moment are stored in one statement.
        self._charges: Coalescer[str, _Asked, asyncpg.Record] = Coalescer(
            self._store_charges, name="fake provider charges"
        )

    @classmethod
    def from_settings(
        cls, settings: PaymentsSettings, *, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> FakeProvider:
        return cls(
            sessionmaker=sessionmaker,
            latency_seconds=settings.fake_provider_latency_ms / 1000,
            failure_rate=settings.fake_provider_failure_rate,
        )

    async def authorize_and_capture(
        self, *, idempotency_key: str, amount: Money, payment_token: str
    ) -> Charge:
        lose_answer = await self._network()
        decline = decline_for(payment_token)
        asked = _Asked(
            charge_id=f"ch_{new_id().hex}",
            amount=amount,
            outcome=decline.value if decline else SUCCEEDED,
        )
        stored = await self._charges.submit(idempotency_key, asked)
        if lose_answer:
            raise ProviderUnavailableError("simulated failure: the answer was lost")
        return _charge(stored)

    async def find_charge(self, *, idempotency_key: str) -> Charge | None:
        if await self._network():
            # A lookup changes nothing, so a lost answer is only an unavailable provider.
            raise ProviderUnavailableError("simulated failure: the answer was lost")
        async with autocommit_connection(self.sessionmaker) as db:
            stored = await db.fetchrow(FIND_CHARGE, idempotency_key)
        return None if stored is None else _charge(stored)

    async def refund(self, *, idempotency_key: str, charge_id: str, amount: Money) -> Refund:
        lose_answer = await self._network()
        async with self.sessionmaker() as session, session.begin():
            charge = await session.scalar(
                select(FakeProviderCharge).where(FakeProviderCharge.charge_id == charge_id)
            )
            if charge is None or charge.outcome != SUCCEEDED:
                raise RefundRefusedError("no captured charge with this id")
            if amount.currency != charge.currency or not 0 < amount.amount <= charge.amount:
                raise RefundRefusedError("the refund exceeds the captured amount")
            row = {
                "idempotency_key": idempotency_key,
                "refund_id": f"re_{new_id().hex}",
                "charge_id": charge_id,
                "amount": amount.amount,
                "currency": amount.currency,
            }
            await session.execute(insert(FakeProviderRefund).values(row).on_conflict_do_nothing())
            stored = await session.scalar(
                select(FakeProviderRefund).where(
                    FakeProviderRefund.idempotency_key == idempotency_key
                )
            )
        assert stored is not None
        if lose_answer:
            raise ProviderUnavailableError("simulated failure: the answer was lost")
        return Refund(
            refund_id=stored.refund_id,
            charge_id=stored.charge_id,
            amount=Money(amount=stored.amount, currency=stored.currency),
        )

    async def _store_charges(self, asked: Mapping[str, _Asked]) -> dict[str, asyncpg.Record]:
        async with autocommit_connection(self.sessionmaker) as db:
            return await _charge_each_once(db, asked)

    def outage(self, seconds: float) -> None:
        """Fail every call, before processing it, for the next ``seconds`` (0 ends it)."""
        self._down_until = time.monotonic() + seconds

    async def _network(self) -> bool:
        """Simulated latency and failures; True when the answer is to be lost after the
        request was processed (a failure before processing raises here)."""
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        if time.monotonic() < self._down_until:
            raise ProviderUnavailableError("simulated outage: the provider is unreachable")
        if self.failure_rate and self._random() < self.failure_rate:
            if self._random() < 0.5:
                raise ProviderUnavailableError("simulated failure: the request was not processed")
            return True
        return False
