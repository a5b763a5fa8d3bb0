"""The price replica: the only source of the prices an order is charged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from orders.db import Base


class CatalogPrice(Base):
    __tablename__ = "catalog_prices"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool]
    # When inventory produced the version held here: an older upsert arriving late (queues
    # do not order across redeliveries) never overwrites a newer one.
    source_occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
