"""The password policy and email normalisation of registration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.identity.schemas import RegisterRequest


def test_email_is_normalised() -> None:
    body = RegisterRequest(email=" Bob@Example.COM ", password="a decent passphrase")
    assert body.email == "bob@example.com"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short pass", "at least 12"),
        ("z" * 129, "at most 128"),
        ("abababababababab", "4 different"),
        ("my name is bobby!", "email"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        RegisterRequest(email="bobby@example.com", password=password)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        RegisterRequest.model_validate(
            {"email": "a@example.com", "password": "a decent passphrase", "roles": ["admin"]}
        )
