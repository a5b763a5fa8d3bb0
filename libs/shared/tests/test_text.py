"""Text a client sends must be encodable, or it is refused for its field."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from shared.text import Encodable


class Login(BaseModel):
    email: Annotated[str, Encodable]
    token: Annotated[SecretStr, Encodable]


@pytest.mark.parametrize("field", ["email", "token"])
def test_a_lone_surrogate_is_refused_for_its_field_without_echoing_it(field: str) -> None:
    body = {"email": "ada@example.com", "token": "tok_visa", field: "secret \ud800"}
    with pytest.raises(ValidationError) as refused:
        Login.model_validate(body)
    errors = refused.value.errors(include_input=False, include_url=False)
    assert [(error["loc"], error["type"]) for error in errors] == [((field,), "string_unicode")]
    assert "secret" not in str(errors)


def test_any_other_text_passes_unchanged() -> None:
    login = Login.model_validate({"email": "ådå@exämple.com 🙂", "token": "tok_\u0000"})
    assert login.email == "ådå@exämple.com 🙂"
    assert login.token.get_secret_value() == "tok_\u0000"
