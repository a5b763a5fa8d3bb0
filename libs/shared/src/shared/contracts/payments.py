"""Events the payments service produces."""

from __future__ import annotations

import uuid

from shared.contracts.base import EventPayload, contract
from shared.contracts.money import Money


@contract("payments.payment_succeeded", 1)
class PaymentSucceeded(EventPayload):
    payment_id: uuid.UUID
    order_id: uuid.UUID
    amount: Money


@contract("payments.payment_failed", 1)
class PaymentFailed(EventPayload):
    payment_id: uuid.UUID
    order_id: uuid.UUID
    reason: str


@contract("payments.payment_refunded", 1)
class PaymentRefunded(EventPayload):
    payment_id: uuid.UUID
    order_id: uuid.UUID
    amount: Money
