"""Identity rules and transaction boundaries: register, log in, refresh, log out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity import repository
from gateway.identity.exceptions import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    PromotionRequired,
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
    refresh_expires_at: datetime  # when the refresh token stops working (a cookie's lifetime)


class AdminOutcome(StrEnum):
    CREATED = "created"
    PROMOTED = "promoted (password reset, sessions revoked)"
    PASSWORD_RESET = "password reset (sessions revoked)"  # noqa: S105 (a message)
    UNCHANGED = "already an admin with this password: unchanged"


def _now() -> datetime:
    return datetime.now(UTC)


async def _release_connection(session: AsyncSession) -> None:
    """Ends the session's read transaction, so its pooled connection goes back before slow
    work (an Argon2 hash): holding it, a handful of concurrent logins would starve every
    other route of connections. A commit, not a rollback: the
    objects read stay loaded (expire_on_commit=False) and nothing was written."""
    await session.commit()


async def register(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    email: str,
    password: str,
    full_name: str | None,
) -> User:
    email = normalise_email(email)
    # Hashed before any query: no connection is held while it runs.
    password_hash = await hasher.hash(password)
    if await repository.get_user_by_email(session, email) is not None:
        raise EmailTaken()
    user = User(
        id=new_id(),
        email=email,
        password_hash=password_hash,
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


def _family_ends_at(issuer: TokenIssuer, family_created_at: datetime) -> datetime:
    return family_created_at + timedelta(seconds=issuer.family_lifetime)


def _issue_pair(
    session: AsyncSession,
    issuer: TokenIssuer,
    user: User,
    *,
    family_id: uuid.UUID,
    family_created_at: datetime,
    session_generation: int,
    refresh_token: str,
) -> TokenPair:
    now = _now()
    # A token never outlives its family's absolute lifetime.
    expires_at = min(
        now + timedelta(seconds=issuer.refresh_ttl), _family_ends_at(issuer, family_created_at)
    )
    session.add(
        RefreshToken(
            id=new_id(),
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_refresh_token(refresh_token),
            created_at=now,
            expires_at=expires_at,
            family_created_at=family_created_at,
            session_generation=session_generation,
        )
    )
    access_token = issuer.access_token(user_id=user.id, roles=list(user.roles))
    return TokenPair(access_token, issuer.access_ttl, refresh_token, expires_at)


async def login(
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    issuer: TokenIssuer,
    email: str,
    password: str,
) -> TokenPair:
    """A new refresh family for the right password.

    Read the user, give the connection back, verify (and rehash) in a thread, then write in
    a transaction of its own, which checks that the password did not change meanwhile.
    """
    user = await repository.get_user_by_email(session, normalise_email(email))
    password_hash = user.password_hash if user is not None else None
    await _release_connection(session)
    # An unknown email costs the same Argon2 verification as a wrong password.
    if not await hasher.verify(password_hash, password) or user is None or password_hash is None:
        raise InvalidCredentials()
    rehashed = await hasher.hash(password) if hasher.needs_rehash(password_hash) else None
    current = await repository.reread_user(session, user.id)
    if current is None or current.password_hash != password_hash:
        # Deleted, or its password reset while this one was checked: the old one is void.
        raise InvalidCredentials()
    if rehashed is not None:
        current.password_hash = rehashed
    pair = _issue_pair(
        session,
        issuer,
        current,
        family_id=new_id(),
        family_created_at=_now(),
        session_generation=current.session_generation,
        refresh_token=new_refresh_token(),
    )
    await session.commit()
    return pair


async def refresh(*, session: AsyncSession, issuer: TokenIssuer, refresh_token: str) -> TokenPair:
    """A new pair for a live refresh token, which is spent by it.

    A spent token presented again within the grace window gets the same new pair back (the
    same refresh token, a new access token for the same session): two tabs, or a reload
    racing a renewal, both hold it legitimately. Later, it means two parties hold it (one of
    them stole it): the whole family is revoked, so neither can go on, and the user logs in
    again.
    """
    now = _now()
    token = await repository.lock_refresh_token(session, hash_refresh_token(refresh_token))
    if (
        token is None
        or token.revoked_at is not None
        or token.expires_at <= now
        or _family_ends_at(issuer, token.family_created_at) <= now
    ):
        raise InvalidRefreshToken()
    user = await repository.get_user(session, token.user_id)
    if user is None or user.session_generation != token.session_generation:
        # Promoted or given a new password since this family logged in: it is over.
        raise InvalidRefreshToken()
    successor = issuer.successor(refresh_token)
    if token.spent_at is not None:
        if (now - token.spent_at).total_seconds() <= issuer.reuse_grace:
            return await _same_pair_again(session, issuer, user, successor)
        await repository.revoke_family(session, token.family_id, now)
        await session.commit()
        raise InvalidRefreshToken()
    token.spent_at = now
    pair = _issue_pair(
        session,
        issuer,
        user,
        family_id=token.family_id,
        family_created_at=token.family_created_at,
        session_generation=token.session_generation,
        refresh_token=successor,
    )
    await session.commit()
    return pair


async def _same_pair_again(
    session: AsyncSession, issuer: TokenIssuer, user: User, successor: str
) -> TokenPair:
    replacement = await repository.get_refresh_token(session, hash_refresh_token(successor))
    await session.commit()
    # None: the successor was derived with another key (the signing key rotated since).
    if replacement is None or replacement.revoked_at is not None:
        raise InvalidRefreshToken()
    access_token = issuer.access_token(user_id=user.id, roles=list(user.roles))
    return TokenPair(access_token, issuer.access_ttl, successor, replacement.expires_at)


async def logout(*, session: AsyncSession, user_id: uuid.UUID, refresh_token: str | None) -> None:
    """Revokes the login (the token's family) if the token is the caller's; silent otherwise."""
    if refresh_token is None:
        return
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
    *,
    session: AsyncSession,
    hasher: PasswordHasher,
    email: str,
    password: str,
    promote: bool = False,
) -> tuple[User, AdminOutcome, int]:
    """The admin account for ``email``; what was done, and how many live sessions (refresh
    families) were revoked.

    A new email makes a new admin. An existing admin whose password is ``password`` is left
    alone (so seeding is idempotent and keeps sessions); any other password is a reset. An
    existing non-admin is promoted only with ``promote`` (else ``PromotionRequired``, nothing
    changed). A promotion or reset sets ``password`` and revokes every session of the user:
    whoever registered the address before, or knew the old password, is out.
    """
    email = normalise_email(email)
    user = await repository.get_user_by_email(session, email)
    await _release_connection(session)
    if user is None:
        user = User(
            id=new_id(), email=email, password_hash=await hasher.hash(password), roles=[ADMIN]
        )
        session.add(user)
        await session.commit()
        return user, AdminOutcome.CREATED, 0
    if ADMIN not in user.roles and not promote:
        raise PromotionRequired(email)
    if ADMIN in user.roles and await hasher.verify(user.password_hash, password):
        return user, AdminOutcome.UNCHANGED, 0
    password_hash = await hasher.hash(password)
    locked = await repository.reread_user(session, user.id, lock=True)
    if locked is None:
        raise UserGone()
    if ADMIN in locked.roles:
        outcome = AdminOutcome.PASSWORD_RESET
    elif promote:
        outcome = AdminOutcome.PROMOTED
        locked.roles = [*locked.roles, ADMIN]
    else:
        raise PromotionRequired(email)
    locked.password_hash = password_hash
    # Every family logged in under the old generation is dead from now on, even one a
    # refresh is rotating at this very moment (its successor keeps the old generation).
    locked.session_generation += 1
    revoked = await repository.revoke_user_families(session, locked.id, _now())
    await session.commit()
    return locked, outcome, revoked
