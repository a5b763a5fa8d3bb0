"""Why a token or a caller is refused: a token's fault (logged) and the 401 and 403 problems."""

from __future__ import annotations

from shared.errors import DomainError

REALM = "commerce"


class InvalidToken(Exception):
    """Why a token was refused; logged, never told to the client."""


class NotAuthenticated(DomainError):
    status = 401
    title = "Unauthorized"
    type = "/problems/not-authenticated"

    def __init__(self, detail: str = "A valid bearer token is required.", *, error: bool = False):
        challenge = f'Bearer realm="{REALM}"'
        if error:
            challenge += ', error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(DomainError):
    status = 403
    title = "Forbidden"
    type = "/problems/forbidden"
