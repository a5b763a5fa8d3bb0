"""The payment table: one row per order, its amounts in minor units."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from payments.db import Base


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUNDED = "refunded"


class FailureReason(StrEnum):
    """Why a payment failed, as carried by ``payments.payment_failed``."""

    CARD_DECLINED = "card_declined"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_PAYMENT_METHOD = "invalid_payment_method"
    PROCESSING_ERROR = "processing_error"
    # Refused before the provider is asked: the request itself cannot be charged.
    INVALID_AMOUNT = "invalid_amount"
    UNSUPPORTED_CURRENCY = "unsupported_currency"


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Unique: however often or concurrently an order's payment is requested, one row (and
    # so one charge) exists for it.
    order_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    user_id: Mapped[uuid.UUID]
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))  # a PaymentStatus value
    failure_reason: Mapped[str | None] = mapped_column(String(50))
    refunded_amount: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    provider_charge_id: Mapped[str | None] = mapped_column(String(100))
    provider_refund_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'refunded')", name="status_known"
        ),
        CheckConstraint("refunded_amount >= 0", name="refunded_amount_not_negative"),
        # A customer's payments, newest first (ids are time-ordered).
        Index("ix_payments_user_id_id", "user_id", "id"),
        # The reconciler's claim: pending payments, longest untouched first. Partial, so it
        # holds only the few payments not yet settled, however many the table keeps.
        Index(
            "ix_payments_pending_updated_at",
            "updated_at",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
    )
