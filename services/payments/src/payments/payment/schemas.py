"""The payment as the API shows it, and its page."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from payments.payment.models import Payment, PaymentStatus
from shared.contracts import Money


class PaymentOut(BaseModel):
    """No card or token data: the service never stores any."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    order_id: uuid.UUID
    amount: Money
    status: PaymentStatus
    failure_reason: str | None = None
    refunded_amount: Money
    created_at: datetime

    @classmethod
    def of(cls, payment: Payment) -> PaymentOut:
        return cls(
            id=payment.id,
            order_id=payment.order_id,
            amount=Money(amount=payment.amount, currency=payment.currency),
            status=PaymentStatus(payment.status),
            failure_reason=payment.failure_reason,
            refunded_amount=Money(amount=payment.refunded_amount, currency=payment.currency),
            created_at=payment.created_at,
        )


class PaymentPage(BaseModel):
    items: list[PaymentOut]
    next_cursor: str | None
