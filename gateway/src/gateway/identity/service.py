"""Identity rules and transaction boundaries: register, log in, refresh, log out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity import repository
from gateway.identity.exceptions import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    UserGone,
)
from gateway.identity.models import RefreshToken, User
from gateway.identity.passwords import PasswordHasher
from gateway.identity.schemas import normalise_email
from gateway.identity.tokens import TokenIssuer, hash_refresh_token, new_refresh_token
from shared.ids import new_id

CUSTOMER = "customer"
ADMIN = "admin"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str


def _now() -> datetime:
    return datetime.now(UTC)


async def register(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    email: str,
    password: str,
    full_name: str | None,
) -> User:
    email = normalise_email(email)
    if await repository.get_user_by_email(session, email) is not None:
        raise EmailTaken()
    user = User(
        id=new_id(),
        email=email,
        password_hash=await hasher.hash(password),
        full_name=full_name,
        roles=[CUSTOMER],
    )
    session.add(user)
    try:
        await session.commit()
    except IntegrityError:
        # Two registrations raced past the check above: the unique constraint decides.
        await session.rollback()
        raise EmailTaken() from None
    return user


async def _issue_pair(
    session: AsyncSession, issuer: TokenIssuer, user: User, family_id: uuid.UUID
) -> TokenPair:
    refresh_token = new_refresh_token()
    now = _now()
    session.add(
        RefreshToken(
            id=new_id(),
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_refresh_token(refresh_token),
            created_at=now,
            expires_at=now + timedelta(seconds=issuer.refresh_ttl),
        )
    )
    access_token = issuer.access_token(user_id=user.id, roles=list(user.roles))
    return TokenPair(access_token, issuer.access_ttl, refresh_token)


async def login(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    issuer: TokenIssuer,
    email: str,
    password: str,
) -> TokenPair:
    user = await repository.get_user_by_email(session, normalise_email(email))
    # An unknown email costs the same Argon2 verification as a wrong password.
    if not await hasher.verify(user.password_hash if user else None, password) or user is None:
        raise InvalidCredentials()
    if hasher.needs_rehash(user.password_hash):
        user.password_hash = await hasher.hash(password)
    pair = await _issue_pair(session, issuer, user, family_id=new_id())
    await session.commit()
    return pair


async def refresh(*, session: AsyncSession, issuer: TokenIssuer, refresh_token: str) -> TokenPair:
    """A new pair for a live refresh token, which is spent by it.

    A spent token presented again means two parties hold it (one of them stole it): the
    whole family is revoked, so neither can go on, and the user logs in again.
    """
    now = _now()
    token = await repository.lock_refresh_token(session, hash_refresh_token(refresh_token))
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        raise InvalidRefreshToken()
    if token.spent_at is not None:
        await repository.revoke_family(session, token.family_id, now)
        await session.commit()
        raise InvalidRefreshToken()
    user = await repository.get_user(session, token.user_id)
    if user is None:
        raise InvalidRefreshToken()
    token.spent_at = now
    pair = await _issue_pair(session, issuer, user, family_id=token.family_id)
    await session.commit()
    return pair


async def logout(*, session: AsyncSession, user_id: uuid.UUID, refresh_token: str) -> None:
    """Revokes the login (the token's family) if the token is the caller's; silent otherwise."""
    token = await repository.lock_refresh_token(session, hash_refresh_token(refresh_token))
    if token is not None and token.user_id == user_id:
        await repository.revoke_family(session, token.family_id, _now())
    await session.commit()


async def get_user(*, session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await repository.get_user(session, user_id)
    if user is None:
        raise UserGone()
    return user


async def create_admin(
    *, session: AsyncSession, hasher: PasswordHasher, email: str, password: str
) -> tuple[User, bool]:
    """The admin account for ``email`` (created, or an existing user promoted and given
    ``password``); whether it was created."""
    email = normalise_email(email)
    password_hash = await hasher.hash(password)
    user = await repository.get_user_by_email(session, email)
    created = user is None
    if user is None:
        user = User(id=new_id(), email=email, password_hash=password_hash, roles=[ADMIN])
        session.add(user)
    else:
        user.password_hash = password_hash
        if ADMIN not in user.roles:
            user.roles = [*user.roles, ADMIN]
    await session.commit()
    return user, created
