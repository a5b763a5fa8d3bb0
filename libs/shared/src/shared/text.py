"""Text from a client that the platform can encode: hash, fingerprint, store."""

from __future__ import annotations

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError


def require_encodable(value: object) -> object:
    """Refuse a string with a lone surrogate: JSON may carry one, UTF-8 cannot encode it.

    pydantic refuses one in a constrained ``str`` (length, pattern) but passes it through a
    bare ``str``, a validator-only one or a ``SecretStr``: this closes those.
    """
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            # The type and message pydantic gives a constrained str; never the input itself.
            raise PydanticCustomError(
                "string_unicode",
                "Input should be a valid string, unable to parse raw data as a unicode string",
            ) from None
    return value


Encodable = BeforeValidator(require_encodable)
"""``Annotated[str, Encodable]`` (or ``SecretStr``): a lone surrogate is a 422 for the field."""
