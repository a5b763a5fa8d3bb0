"""The fake provider's memory: what it charged and refunded, by idempotency key.

A real provider keeps this on its side; the fake keeps it in tables of its own so that,
like a real one, it remembers a charge across a crash of the process that asked for it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String, func
from sqlalchemy.orm import Mapped, mapped_column

from payments.db import Base


class FakeProviderCharge(Base):
    __tablename__ = "fake_provider_charges"

    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    charge_id: Mapped[str] = mapped_column(String(100), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # "succeeded", or the decline code ("card_declined", ...): a decline is an answer too,
    # and the same key gets the same answer again.
    outcome: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FakeProviderRefund(Base):
    __tablename__ = "fake_provider_refunds"

    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    refund_id: Mapped[str] = mapped_column(String(100), unique=True)
    charge_id: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
