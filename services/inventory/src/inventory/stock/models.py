"""Stock levels, the append-only movement ledger, and reservations per order."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from inventory.db import Base


class MovementKind(StrEnum):
    ADJUSTMENT = "adjustment"
    RESERVATION = "reservation"
    RELEASE = "release"
    COMMIT = "commit"
    RETURN = "return"


class ReservationStatus(StrEnum):
    RESERVED = "reserved"  # stock held for the order
    REJECTED = "rejected"  # nothing could be reserved; remembered so a repeat is refused too
    COMMITTED = "committed"  # paid: on hand decreased
    RELEASED = "released"  # cancelled before payment
    EXPIRED = "expired"  # released by the sweeper after the TTL
    RETURNED = "returned"  # cancelled after commit: quantities back on hand
    # Confirmed after the sweeper expired it, and the stock was sold by then:
    # nothing committed, ``stock_commit_failed`` emitted; a cancellation has nothing to undo.
    COMMIT_FAILED = "commit_failed"
    # The cancellation arrived before the creation (a tombstone, so the late creation
    # reserves nothing), or after the reservation expired (so a late confirmation takes
    # nothing for an order that is over).
    CANCELLED = "cancelled"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class StockItem(Base):
    __tablename__ = "stock_items"
    __table_args__ = (
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        # The last line of defence against overselling, whatever a query gets wrong.
        CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
    )

    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"), primary_key=True)
    on_hand: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    reserved: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Set when stock_low was emitted, cleared when available rises above the reorder point
    # again: one event per crossing, not one per sale.
    low_stock_alerted: Mapped[bool] = mapped_column(server_default=text("false"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockMovement(Base):
    """One change of on hand or reserved; rows are never updated or deleted (a trigger
    refuses it), so the ledger explains every stock level."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint(_in("kind", MovementKind), name="kind_known"),
        Index(None, "sku", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))
    kind: Mapped[str] = mapped_column(String(20))
    on_hand_delta: Mapped[int] = mapped_column(BigInteger)
    reserved_delta: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(200))  # order id or admin user id
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Reservation(Base):
    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(_in("status", ReservationStatus), name="status_known"),
        # The sweeper scans only live reservations, oldest deadline first.
        Index(
            "ix_reservations_live_expires_at",
            "expires_at",
            postgresql_where=text("status = 'reserved'"),
        ),
    )

    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The trace context of the order_created that reserved it (docs/tracing.md): its
    # expiry's events continue that order's trace. NULL when tracing is off.
    trace_context: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReservationLine(Base):
    __tablename__ = "reservation_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    order_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("reservations.order_id"), primary_key=True
    )
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"), primary_key=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
