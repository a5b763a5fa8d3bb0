"""FastAPI dependencies: the caller of a request, from its bearer token, and role checks.

Routes declare ``PrincipalDep``, ``OptionalPrincipalDep``, ``AdminDep`` or ``CustomerDep``;
the app's ``TokenVerifier`` is ``app.state.token_verifier``, built from its settings on
first use. A missing token is a 401 with ``WWW-Authenticate: Bearer``, a wrong role a 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth.errors import Forbidden, InvalidToken, NotAuthenticated
from shared.auth.principal import Principal
from shared.auth.verifier import TokenVerifier

logger = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/v1/auth/token.")


def token_verifier(request: Request) -> TokenVerifier:
    """The app's verifier: ``app.state.token_verifier``, built from its settings on first use."""
    state = request.app.state
    verifier: TokenVerifier | None = getattr(state, "token_verifier", None)
    if verifier is None:
        verifier = TokenVerifier.from_settings(state.settings)
        state.token_verifier = verifier
    return verifier


def authenticate(verifier: TokenVerifier, authorization: str | None) -> Principal | None:
    """The principal of an ``Authorization`` header value; None without one; 401 if invalid."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("The Authorization header must be 'Bearer <token>'.", error=True)
    try:
        return verifier.verify(token.strip())
    except InvalidToken as exc:
        logger.info("token refused: %s", exc)
        raise NotAuthenticated("The bearer token is invalid or expired.", error=True) from None


# Each dependency below reads the token itself, beside the bearer scheme, rather than
# through the others: every level of FastAPI's dependency tree costs its solver CPU on every
# request, so a role check stays two levels deep (bench/CHANGES.md).
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _caller(request: Request) -> Principal | None:
    return authenticate(token_verifier(request), request.headers.get("authorization"))


async def optional_principal(request: Request, credentials: BearerCredentials) -> Principal | None:
    """The caller, or None when anonymous; an invalid token is still a 401.

    ``credentials`` is declared so that the OpenAPI document shows the bearer scheme; the
    header is parsed here, with the platform's own rules.
    """
    return _caller(request)


async def current_principal(request: Request, credentials: BearerCredentials) -> Principal:
    """The caller; 401 with ``WWW-Authenticate: Bearer`` when there is no valid token."""
    principal = _caller(request)
    if principal is None:
        raise NotAuthenticated()
    return principal


def require_role(*roles: str) -> Callable[..., Any]:
    """A dependency answering the caller when they hold one of ``roles``, else 403."""
    wanted = frozenset(roles)

    async def dependency(request: Request, credentials: BearerCredentials) -> Principal:
        principal = await current_principal(request, credentials)
        if not wanted & principal.roles:
            raise Forbidden(f"This needs the role {' or '.join(sorted(wanted))}.")
        return principal

    return dependency


OptionalPrincipalDep = Annotated[Principal | None, Depends(optional_principal)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
CustomerDep = Annotated[Principal, Depends(require_role("customer"))]
