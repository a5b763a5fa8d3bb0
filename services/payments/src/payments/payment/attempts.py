"""The first step of a charge (``charges``): its attempt, a pending payment committed before
the provider is asked, which a redelivered request resumes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments.payment import repository
from payments.payment.models import Payment
from shared.coalescing import Coalescer
from shared.contracts.orders import PaymentRequested
from shared.db import autocommit_connection
from shared.ids import new_id
from shared.tracing.messaging import current_trace_context


class _Request(NamedTuple):
    request: PaymentRequested
    trace_context: str | None  # the caller's, as a row stores it


class AttemptRecorder:
    """Records charge attempts, committed: those made at the same moment (the prefetched
    requests arriving together) in one statement (``shared.coalescing``)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self._coalescer: Coalescer[uuid.UUID, _Request, Payment] = Coalescer(
            self._record_all, name="payments attempts"
        )

    async def record(self, request: PaymentRequested) -> Payment:
        """The order's payment, inserted as pending (and committed) unless it exists already."""
        # The trace context is taken here: a coalesced flush runs in no caller's context.
        return await self._coalescer.submit(
            request.order_id, _Request(request, current_trace_context())
        )

    async def _record_all(self, requests: Mapping[uuid.UUID, _Request]) -> dict[uuid.UUID, Payment]:
        attempts = [
            repository.Attempt(
                payment_id=new_id(),
                order_id=request.order_id,
                user_id=request.user_id,
                amount=request.amount.amount,
                currency=request.amount.currency,
                trace_context=trace_context,
            )
            for request, trace_context in requests.values()
        ]
        async with autocommit_connection(self.sessionmaker) as db:
            return await repository.record_attempts(db, attempts)
