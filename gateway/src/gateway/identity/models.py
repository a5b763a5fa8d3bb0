"""Users and their refresh tokens, in the gateway's own schema."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, DateTime, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Stored normalised (trimmed, lower-case), so the unique constraint is the whole check.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Bumped by a promotion or a password reset: every refresh family created under an
    # older generation is dead, including one rotated by a refresh racing the change.
    session_generation: Mapped[int] = mapped_column(Integer, server_default="0")


class RefreshToken(Base):
    """One refresh token of a family: every rotation adds a token to the login's family.

    Only a SHA-256 of the token is stored; a database leak does not hand out sessions.
    ``family_created_at`` and ``session_generation`` are copied from token to token of a
    family: the first bounds the family's whole life, the second ties it to the user's
    generation when it was logged in.
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(User.id, ondelete="CASCADE"), index=True)
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    spent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    family_created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    session_generation: Mapped[int] = mapped_column(Integer, server_default="0")
