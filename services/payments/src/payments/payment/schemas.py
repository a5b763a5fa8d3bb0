"""The payment as the API shows it, its page, and the opaque cursor of that page."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

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


def encode_cursor(last_id: uuid.UUID) -> str:
    """The cursor after ``last_id``: opaque to clients, only this service reads it."""
    return base64.urlsafe_b64encode(last_id.bytes).rstrip(b"=").decode()


def decode_cursor(cursor: object) -> uuid.UUID:
    if not isinstance(cursor, str):
        raise ValueError("not a cursor this API issued")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not a cursor this API issued") from None
    if len(raw) != 16:
        raise ValueError("not a cursor this API issued")
    return uuid.UUID(bytes=raw)


# A query parameter type: a malformed cursor is a 422 with a field error, like any bad input.
# Documented as the opaque string it is, handed to the code as the id it stands for.
Cursor = Annotated[uuid.UUID, BeforeValidator(decode_cursor), WithJsonSchema({"type": "string"})]
