"""Queries of identity; no transaction handling here (service.py owns it)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity.models import RefreshToken, User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def reread_user(
    session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False
) -> User | None:
    """The user as the database has it now, not as an earlier transaction of this session
    read it (the identity map would answer without a query); locked if asked."""
    statement = select(User).where(User.id == user_id).execution_options(populate_existing=True)
    if lock:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def get_refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


async def lock_refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    """The token row, locked: two refreshes with one token are decided one after the other."""
    return await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def revoke_user_families(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    """Revokes every live token of the user; how many families were still live."""
    families = await session.scalar(
        select(func.count(func.distinct(RefreshToken.family_id))).where(
            RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(families or 0)
