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


class PromotionRequired(Exception):
    """``create-admin`` met an existing non-admin account without ``--promote``."""

    def __init__(self, email: str) -> None:
        super().__init__(
            f"{email} is an existing account without the admin role; pass --promote to make"
            " it an admin (its password is then reset and every session of it revoked)"
        )


class ForbiddenOrigin(DomainError):
    status = 403
    title = "Forbidden"
    type = "/problems/forbidden-origin"

    def __init__(self) -> None:
        # A request carrying the refresh cookie must say where it comes from (CSRF defence).
        super().__init__("A request with the refresh cookie must come from an allowed Origin.")
