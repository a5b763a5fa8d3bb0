"""What identity refuses, as problem+json."""

from __future__ import annotations

from shared.auth import REALM
from shared.errors import DomainError

_CHALLENGE = {"WWW-Authenticate": f'Bearer realm="{REALM}"'}


class EmailTaken(DomainError):
    status = 409
    title = "Email taken"
    type = "/problems/email-taken"

    def __init__(self) -> None:
        super().__init__("An account with this email already exists.")


class InvalidCredentials(DomainError):
    status = 401
    title = "Unauthorized"
    type = "/problems/invalid-credentials"

    def __init__(self) -> None:
        # One message for an unknown email and a wrong password: no account enumeration.
        super().__init__("The email or password is incorrect.", headers=_CHALLENGE)


class InvalidRefreshToken(DomainError):
    status = 401
    title = "Unauthorized"
    type = "/problems/invalid-refresh-token"

    def __init__(self) -> None:
        super().__init__("The refresh token is invalid, expired or revoked.", headers=_CHALLENGE)


class UserGone(DomainError):
    status = 401
    title = "Unauthorized"
    type = "/problems/not-authenticated"

    def __init__(self) -> None:
        super().__init__("The account of this token no longer exists.", headers=_CHALLENGE)
