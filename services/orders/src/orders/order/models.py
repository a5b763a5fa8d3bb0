"""Orders, their lines and status history, and the Idempotency-Key records of POST /orders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from orders.db import Base
from orders.saga import OrderStatus

# Stored as text with a check constraint (not a Postgres enum type), so adding a status is a
# plain migration rather than an ALTER TYPE.
STATUS_TYPE = Enum(
    OrderStatus,
    name="order_status",
    native_enum=False,
    create_constraint=True,
    length=32,
    values_callable=lambda statuses: [status.value for status in statuses],
)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_user_id_id", "user_id", "id"),
        # The sweeper scans only orders waiting on another service (inventory, or payments
        # for a charge or a refund).
        Index(
            "ix_orders_sweep_due_at",
            "sweep_due_at",
            postgresql_where=text("sweep_due_at IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID]
    status: Mapped[OrderStatus] = mapped_column(STATUS_TYPE)
    total_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Kept only while the order may still need it to request payment (see the README).
    payment_token: Mapped[str | None] = mapped_column(String(255))
    payment_requests: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    payment_id: Mapped[uuid.UUID | None]
    # What the refund asks for, set on the move to refund_pending (what was charged, which a
    # mismatched charge makes differ from the total): the sweeper asks again for the same.
    refund_amount: Mapped[int | None] = mapped_column(BigInteger)
    refund_currency: Mapped[str | None] = mapped_column(String(3))
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    sweep_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When inventory releases the reservation (from stock_reserved): payment is requested
    # only until a margin before it.
    reservation_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The trace context of the request that placed it (docs/tracing.md): the sweeper's
    # events for it continue that trace. NULL when tracing is off.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    lines: Mapped[list[OrderLine]] = relationship(
        order_by="OrderLine.position", lazy="selectin", cascade="all, delete-orphan"
    )
    history: Mapped[list[StatusChange]] = relationship(
        order_by="StatusChange.id", lazy="selectin", cascade="all, delete-orphan"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_amount: Mapped[int] = mapped_column(BigInteger)


class StatusChange(Base):
    __tablename__ = "order_status_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[OrderStatus] = mapped_column(STATUS_TYPE)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyRecord(Base):
    """The first answer to one user's Idempotency-Key, replayed for a retry of that request."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 of the canonical request body: tells a retry from a different request.
    request_hash: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[uuid.UUID]
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


# -- a line being placed: plain values, never mapped -----------------------------------------


@dataclass(frozen=True, slots=True)
class PricedLine:
    """A line of an order being placed, priced from the replica. POST /orders writes it with
    fixed SQL and answers it; as a transient ORM object it would spend a noticeable share of
    the request's CPU in SQLAlchemy's instrumented constructors, for an object no session
    ever sees."""

    sku: str
    position: int
    name: str
    quantity: int
    unit_price_amount: int
