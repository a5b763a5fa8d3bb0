"""The first step of a charge (``charges``): its attempt, a pending payment committed before
the provider is asked, which a redelivered request resumes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payments.payment import repository
from payments.payment.models import Payment
from shared.coalescing import Coalescer
from shared.contracts.orders import PaymentRequested
from shared.db import autocommit_connection
from shared.ids import new_id


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
