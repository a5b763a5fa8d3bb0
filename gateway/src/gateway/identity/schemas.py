"""Request and response bodies of /api/v1/auth."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.text import Encodable

PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 128  # Argon2 has no limit; this bounds the work a request can cause
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased: one account per address, whatever its spelling."""
    return value.strip().lower()


def _valid_email(value: str) -> str:
    email = normalise_email(value)
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise ValueError("not a valid email address")
    return email


def _valid_password(value: str) -> str:
    if len(value) < PASSWORD_MIN_LENGTH:
        raise ValueError(f"the password must have at least {PASSWORD_MIN_LENGTH} characters")
    if len(value) > PASSWORD_MAX_LENGTH:
        raise ValueError(f"the password must have at most {PASSWORD_MAX_LENGTH} characters")
    if value.strip() == "" or len(set(value)) < 4:
        raise ValueError("the password must use at least 4 different characters")
    return value


# Encodable: the password is hashed and the email stored as UTF-8.
Email = Annotated[str, Encodable, AfterValidator(_valid_email)]
Password = Annotated[str, Encodable, AfterValidator(_valid_password)]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password
    full_name: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _password_is_not_the_email(self) -> RegisterRequest:
        local_part = self.email.partition("@")[0]
        if len(local_part) >= 4 and local_part in self.password.lower():
            raise ValueError("the password must not contain the email address")
        return self


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Left out when the refresh token travels in its cookie (docs/identity.md).
    refresh_token: str | None = Field(default=None, min_length=1, max_length=256)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    roles: list[str]


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)
    expires_in: int
    # Absent when it was asked for in a cookie (``refresh_in=cookie``).
    refresh_token: str | None = None
