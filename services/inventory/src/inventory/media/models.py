"""The media table: the metadata of each upload; the bytes live on the shared file system."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from inventory.db import Base


class ProductMedia(Base):
    __tablename__ = "product_media"
    __table_args__ = (
        CheckConstraint("size > 0", name="size_positive"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_format"),
        Index("ix_product_media_sku_seq", "sku", "seq"),
        Index("ix_product_media_sha256", "sha256"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Upload order: a product's images are listed by it.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    sku: Mapped[str] = mapped_column(String(64), ForeignKey("products.sku"))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
