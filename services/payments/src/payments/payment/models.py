"""The payment table: one row per order, its amounts in minor units."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
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
    # The trace context of the payment_requested that recorded it (docs/tracing.md): the
    # reconciler's events for it continue that trace. NULL when tracing is off.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)
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


class RefundStatus(StrEnum):
    OWED = "owed"  # the provider could not be asked: the refund reconciler retries it
    REFUNDED = "refunded"
    REFUSED = "refused"  # the provider will never make it: an operator must look


class OwedRefund(Base):
    """A refund the provider could not make when orders asked for it, kept until it is made.

    One per payment (a payment is refunded in full, once). Written only when the first
    attempt fails, so a refund the provider makes at once leaves no row here.
    """

    __tablename__ = "refunds"

    payment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # a RefundStatus value
    # Failed provider calls so far; the next pause grows with it.
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Of the request that asked for it: the eventual payment_refunded is its follow-up.
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    causation_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("status IN ('owed', 'refunded', 'refused')", name="status_known"),
        # The refund reconciler's claim: owed refunds, the earliest due first. Partial: it
        # holds only the refunds still owed.
        Index(
            "ix_refunds_owed_next_attempt_at",
            "next_attempt_at",
            "payment_id",
            postgresql_where=text("status = 'owed'"),
        ),
    )
