"""HTTP of identity: /api/v1/auth. Parses, limits, calls the service, shapes the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import OAuth2PasswordRequestForm

from gateway.deps import ClientAddressDep, RuntimeDep, SessionDep
from gateway.identity import service
from gateway.identity.models import User
from gateway.identity.schemas import (
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserOut,
    normalise_email,
)
from gateway.ratelimit import account_key
from shared.auth import PrincipalDep
from shared.openapi import problem_responses

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

# Statuses of these routes alone; the gateway documents its own (413, 429, 503) on every
# route (gateway.openapi).
_UNAUTHORIZED = problem_responses((401, "Bad credentials or token."))
_LIMITED = problem_responses((429, "Too many attempts; see Retry-After."))


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, roles=list(user.roles))


def _token_response(pair: service.TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )


@router.post(
    "/register",
    status_code=201,
    responses={**problem_responses((409, "The email is taken.")), **_LIMITED},
)
async def register(
    body: RegisterRequest, session: SessionDep, runtime: RuntimeDep, address: ClientAddressDep
) -> UserOut:
    limiter = runtime.rate_limiter
    await limiter.enforce(limiter.auth_per_address, "register", address)
    user = await service.register(
        session=session,
        hasher=runtime.hasher,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
    )
    return _user_out(user)


@router.post("/token", responses={**_UNAUTHORIZED, **_LIMITED})
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    runtime: RuntimeDep,
    address: ClientAddressDep,
) -> TokenResponse:
    """Log in with the OAuth2 password form: ``username`` is the email."""
    limiter = runtime.rate_limiter
    # Per address stops one client trying many accounts; per account stops many clients
    # (a botnet) trying one account.
    await limiter.enforce(limiter.login_per_address, "login-address", address)
    email = normalise_email(form.username)
    await limiter.enforce(limiter.login_per_account, "login-account", account_key(email))
    pair = await service.login(
        session=session,
        hasher=runtime.hasher,
        issuer=runtime.issuer,
        email=email,
        password=form.password,
    )
    return _token_response(pair)


@router.post("/refresh", responses={**_UNAUTHORIZED, **_LIMITED})
async def refresh(
    body: RefreshRequest, session: SessionDep, runtime: RuntimeDep, address: ClientAddressDep
) -> TokenResponse:
    limiter = runtime.rate_limiter
    await limiter.enforce(limiter.auth_per_address, "refresh", address)
    pair = await service.refresh(
        session=session, issuer=runtime.issuer, refresh_token=body.refresh_token
    )
    return _token_response(pair)


@router.post("/logout", status_code=204, responses=_UNAUTHORIZED)
async def logout(body: RefreshRequest, principal: PrincipalDep, session: SessionDep) -> Response:
    await service.logout(
        session=session, user_id=principal.user_id, refresh_token=body.refresh_token
    )
    return Response(status_code=204)


@router.get("/me", responses=_UNAUTHORIZED)
async def me(principal: PrincipalDep, session: SessionDep) -> UserOut:
    return _user_out(await service.get_user(session=session, user_id=principal.user_id))
