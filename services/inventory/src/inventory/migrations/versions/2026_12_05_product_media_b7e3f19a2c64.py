"""Product media: the metadata of each uploaded image (the bytes live on MEDIA_ROOT).

Revision ID: b7e3f19a2c64
Revises: 9c4e2b7d1a05
Created: 2026-12-05 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7e3f19a2c64"
down_revision: str | None = "9c4e2b7d1a05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"


def upgrade() -> None:
    op.create_table(
        "product_media",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("size > 0", name=op.f("ck_product_media_size_positive")),
        sa.CheckConstraint(
            "sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_product_media_sha256_format")
        ),
        sa.ForeignKeyConstraint(
            ["sku"],
            [f"{SCHEMA}.products.sku"],
            name=op.f("fk_product_media_sku_products"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_media")),
        sa.UniqueConstraint("seq", name=op.f("uq_product_media_seq")),
        schema=SCHEMA,
    )
    op.create_index("ix_product_media_sku_seq", "product_media", ["sku", "seq"], schema=SCHEMA)
    op.create_index("ix_product_media_sha256", "product_media", ["sha256"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("product_media", schema=SCHEMA)
