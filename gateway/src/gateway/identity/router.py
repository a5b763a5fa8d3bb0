"""HTTP of identity: /api/v1/auth. Parses, limits, calls the service, shapes the answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from gateway.config import GatewaySettings
from gateway.deps import ClientAddressDep, RuntimeDep, SessionDep
from gateway.identity import service
from gateway.identity.exceptions import ForbiddenOrigin, InvalidCredentials
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

PREFIX = "/api/v1/auth"
REFRESH_COOKIE = "refresh_token"

router = APIRouter(prefix=PREFIX, tags=["auth"])

# Statuses of these routes alone; the gateway documents its own (413, 429, 503) on every
# route (gateway.openapi).
_UNAUTHORIZED = problem_responses((401, "Bad credentials or token."))
_LIMITED = problem_responses((429, "Too many attempts; see Retry-After."))
_FORBIDDEN_ORIGIN = problem_responses((403, "Refresh cookie sent without an allowed Origin."))

RefreshIn = Annotated[
    Literal["body", "cookie"] | None,
    Query(
        description="Where the new refresh token goes: the body, or an HttpOnly cookie (for "
        "browsers). Default: the body; on /refresh, where the presented token came from."
    ),
]


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, email=user.email, roles=list(user.roles))


def _set_refresh_cookie(
    response: Response, settings: GatewaySettings, pair: service.TokenPair
) -> None:
    max_age = int((pair.refresh_expires_at - datetime.now(UTC)).total_seconds())
    response.set_cookie(
        REFRESH_COOKIE,
        pair.refresh_token,
        max_age=max(max_age, 0),
        path=PREFIX,
        secure=settings.environment != "development",
        httponly=True,
        samesite="strict",
    )


def _clear_refresh_cookie(response: Response, settings: GatewaySettings) -> None:
    response.delete_cookie(
        REFRESH_COOKIE,
        path=PREFIX,
        secure=settings.environment != "development",
        httponly=True,
        samesite="strict",
    )


def _token_response(
    pair: service.TokenPair,
    response: Response,
    settings: GatewaySettings,
    refresh_in: Literal["body", "cookie"],
) -> TokenResponse:
    if refresh_in == "cookie":
        # Out of the body: script on the page never sees it.
        _set_refresh_cookie(response, settings, pair)
        return TokenResponse(access_token=pair.access_token, expires_in=pair.expires_in)
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
    )


def _presented_refresh_token(
    request: Request, body: RefreshRequest | None, settings: GatewaySettings
) -> tuple[str | None, bool]:
    """The refresh token of the request, and whether it came from the cookie.

    The body's wins. A cookie is sent by the browser whoever made the page that asks
    (SameSite=Strict aside), so a cookie-borne request must name an allowed Origin: a page
    elsewhere cannot renew or end a session it could not read. Browsers send Origin on every
    POST, same-origin included.
    """
    if body is not None and body.refresh_token is not None:
        return body.refresh_token, False
    cookie = request.cookies.get(REFRESH_COOKIE)
    if not cookie:
        return None, False
    _require_allowed_origin(request, settings)
    return cookie, True


def _require_allowed_origin(request: Request, settings: GatewaySettings) -> None:
    """Refuse (403) a request from a page outside the CORS allow-list: one that reads or
    writes the refresh cookie. Setting it matters as much as reading it: a login form posted
    from another site would otherwise put the attacker's session into the victim's browser."""
    if request.headers.get("origin") not in settings.cors_allow_origins:
        raise ForbiddenOrigin()


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


@router.post(
    "/token",
    response_model_exclude_none=True,
    responses={**_UNAUTHORIZED, **_FORBIDDEN_ORIGIN, **_LIMITED},
)
async def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    runtime: RuntimeDep,
    address: ClientAddressDep,
    response: Response,
    refresh_in: RefreshIn = None,
) -> TokenResponse:
    """Log in with the OAuth2 password form: ``username`` is the email."""
    if refresh_in == "cookie":
        _require_allowed_origin(request, runtime.settings)
    limiter = runtime.rate_limiter
    # Per address, every attempt: one client trying many accounts. Per account, failures
    # only: many clients (a botnet) guessing one account, without letting them lock out its
    # owner, whose address keeps a budget of its own (gateway.ratelimit.LoginLimits).
    await limiter.enforce(limiter.login_per_address, "login-address", address)
    email = normalise_email(form.username)
    attempt = await limiter.login.attempt(account_key(email), address)
    try:
        pair = await service.login(
            session=session,
            hasher=runtime.hasher,
            issuer=runtime.issuer,
            email=email,
            password=form.password,
        )
    except InvalidCredentials:
        raise  # a failure: it stays counted
    except Exception:
        await limiter.login.abandoned(attempt)  # no verdict on the password
        raise
    await limiter.login.succeeded(attempt)
    return _token_response(pair, response, runtime.settings, refresh_in or "body")


@router.post(
    "/refresh",
    response_model_exclude_none=True,
    responses={**_UNAUTHORIZED, **_FORBIDDEN_ORIGIN, **_LIMITED},
)
async def refresh(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    address: ClientAddressDep,
    response: Response,
    refresh_in: RefreshIn = None,
    body: RefreshRequest | None = None,
) -> TokenResponse:
    """A new pair for a refresh token, from the body or from the refresh cookie."""
    if refresh_in == "cookie":
        _require_allowed_origin(request, runtime.settings)
    limiter = runtime.rate_limiter
    await limiter.enforce(limiter.auth_per_address, "refresh", address)
    presented, from_cookie = _presented_refresh_token(request, body, runtime.settings)
    pair = await service.refresh(
        session=session, issuer=runtime.issuer, refresh_token=presented or ""
    )
    where = refresh_in or ("cookie" if from_cookie else "body")
    return _token_response(pair, response, runtime.settings, where)


@router.post("/logout", status_code=204, responses={**_UNAUTHORIZED, **_FORBIDDEN_ORIGIN})
async def logout(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    body: RefreshRequest | None = None,
) -> Response:
    """Ends the login of the refresh token (body or cookie), and clears the cookie."""
    presented, _ = _presented_refresh_token(request, body, runtime.settings)
    await service.logout(session=session, user_id=principal.user_id, refresh_token=presented)
    response = Response(status_code=204)
    _clear_refresh_cookie(response, runtime.settings)
    return response


@router.get("/me", responses=_UNAUTHORIZED)
async def me(principal: PrincipalDep, session: SessionDep) -> UserOut:
    return _user_out(await service.get_user(session=session, user_id=principal.user_id))
