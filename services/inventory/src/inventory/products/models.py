"""The product table, and the sku format it enforces."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from inventory.db import Base

SKU_PATTERN = r"^[A-Z0-9][A-Z0-9-]{1,63}$"


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price_amount >= 0", name="price_not_negative"),
        CheckConstraint("reorder_point >= 0", name="reorder_point_not_negative"),
        CheckConstraint(f"sku ~ '{SKU_PATTERN}'", name="sku_format"),
    )

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    price_amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    price_currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    reorder_point: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
