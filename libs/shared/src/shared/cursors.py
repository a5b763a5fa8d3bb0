"""Signed list cursors: one codec, one error, one setting, one way to page, for every service.

A cursor is ``base64url(position) "." base64url(HMAC-SHA256(key, kind NUL position))``,
the tag cut to 128 bits. A client can hold one but neither forge nor alter it, and a cursor
of one list (``kind``) never pages another. Keys rotate: the first key of ``cursor_keys``
signs, every key verifies, so replicas can be rolled one by one (add the new key second,
then move it first, then drop the old one once its cursors have aged out). Anything the
server did not issue is ``InvalidCursor``: a 400 of type ``/problems/invalid-cursor``.
A list takes ``LimitQuery`` and ``CursorQuery``, reads ``limit + 1`` rows from the position
``after`` decodes, and ``page`` cuts them into the page and the next page's cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Annotated, TypeVar

from fastapi import Query
from pydantic import BeforeValidator, SecretStr, field_validator, model_validator

from shared.errors import DomainError
from shared.settings import BaseServiceSettings

INVALID_CURSOR_TYPE = "/problems/invalid-cursor"
# Longer input is refused before any decoding: no cursor this codec issues comes near it.
MAX_CURSOR_CHARS = 512
# 128 bits of HMAC-SHA256: far beyond guessing, and keeps cursors short in URLs.
_TAG_BYTES = 16
# Outside development and test a key must carry at least this much: a short one is guessable.
MIN_PRODUCTION_KEY_CHARS = 32

T = TypeVar("T")


def _decimal_digits(value: object) -> object:
    # Pydantic's lax integers also read " 5", "+5" and "5_0" from a query string; a limit
    # is written in digits and nothing else (anything else is a 422, as DESIGN says).
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("the limit is written in decimal digits only")
    return value


# The page size of every list.
LimitQuery = Annotated[
    int,
    # After Query: a validator before it would hide the bounds from the OpenAPI schema.
    Query(ge=1, le=100, description="Items per page, 1 to 100."),
    BeforeValidator(_decimal_digits),
]

# The query parameter of every list. No length or pattern here: whatever the server did not
# issue is refused the same way (400), not split between a 422 and a 400.
CursorQuery = Annotated[
    str | None,
    Query(
        description=(
            "The `next_cursor` of the previous page, as given. Anything else is a 400 of "
            f"type `{INVALID_CURSOR_TYPE}`."
        )
    ),
]


class InvalidCursor(DomainError):
    status = 400
    title = "Invalid cursor"
    type = INVALID_CURSOR_TYPE

    def __init__(self) -> None:
        super().__init__("The cursor is not one this list issued; start again without one.")


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # validate=True refuses characters outside the alphabet instead of skipping them, so
    # one cursor has one spelling.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class CursorCodec:
    """Encodes and verifies cursors with ``keys``: the first signs, all verify."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        encoded = [key.encode() if isinstance(key, str) else key for key in keys]
        if not encoded or not all(encoded):
            raise ValueError("a cursor codec needs at least one non-empty key")
        self._keys = tuple(encoded)

    @staticmethod
    def _tag(key: bytes, kind: str, position: bytes) -> bytes:
        message = kind.encode() + b"\x00" + position
        return hmac.new(key, message, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, kind: str, position: str) -> str:
        """A cursor that resumes the ``kind`` list at ``position`` (a key the list orders by)."""
        raw = position.encode()
        return f"{_b64encode(raw)}.{_b64encode(self._tag(self._keys[0], kind, raw))}"

    def decode(self, kind: str, cursor: str) -> str:
        """The position ``cursor`` carries; ``InvalidCursor`` unless one of our keys signed
        it for this ``kind``."""
        if len(cursor) > MAX_CURSOR_CHARS:
            raise InvalidCursor()
        position_part, dot, tag_part = cursor.partition(".")
        if not dot:
            raise InvalidCursor()
        try:
            raw = _b64decode(position_part)
            tag = _b64decode(tag_part)
        except (binascii.Error, ValueError):
            raise InvalidCursor() from None
        if len(tag) != _TAG_BYTES:
            raise InvalidCursor()
        # The signing key first: every cursor issued since the last rotation costs one HMAC.
        if not any(hmac.compare_digest(tag, self._tag(key, kind, raw)) for key in self._keys):
            raise InvalidCursor()
        try:
            return raw.decode()
        except UnicodeDecodeError:  # only a key leak could sign this; refuse it all the same
            raise InvalidCursor() from None

    def after(self, kind: str, cursor: str | None) -> str | None:
        """Where a page of the ``kind`` list starts: the position ``cursor`` carries, or
        None (the first page) without one."""
        return None if cursor is None else self.decode(kind, cursor)

    def after_id(self, kind: str, cursor: str | None) -> uuid.UUID | None:
        """``after`` for a list ordered by id."""
        position = self.after(kind, cursor)
        if position is None:
            return None
        try:
            return uuid.UUID(position)
        except ValueError:  # signed by us yet no id: only a leaked key could make one
            raise InvalidCursor() from None

    def page(
        self, kind: str, rows: Sequence[T], *, limit: int, position: Callable[[T], object]
    ) -> tuple[list[T], str | None]:
        """Of ``limit + 1`` rows read (one more than the page tells whether another page
        follows, without a count): the page, and the cursor of the next page or None."""
        items = list(rows[:limit])
        if len(rows) <= limit:
            return items, None
        return items, self.encode(kind, str(position(items[-1])))


def split_keys(value: str) -> list[str]:
    """The keys of a ``cursor_keys`` setting: comma-separated, surrounding spaces ignored."""
    return [key.strip() for key in value.split(",") if key.strip()]


@lru_cache(maxsize=8)
def _codec(keys: str) -> CursorCodec:
    return CursorCodec(split_keys(keys))


class CursorSettings(BaseServiceSettings):
    """Settings of a service that issues cursors: ``<SERVICE>_CURSOR_KEYS`` or, shared by
    every service, ``COMMERCE_CURSOR_KEYS``; comma-separated, the first signs."""

    cursor_keys: SecretStr = SecretStr("change-me")
    """Comma-separated HMAC keys for list cursors, the same in every replica: the first signs, all
    verify (rotation: docs/api.md); a placeholder or a key under 32 characters stops the process
    outside development and test."""

    @field_validator("cursor_keys")
    @classmethod
    def _at_least_one_key(cls, value: SecretStr) -> SecretStr:
        if not split_keys(value.get_secret_value()):
            raise ValueError("cursor_keys needs at least one key")
        return value

    @model_validator(mode="after")
    def _keys_long_enough_outside_development(self) -> CursorSettings:
        if self.environment in ("development", "test"):
            return self
        keys = split_keys(self.cursor_keys.get_secret_value())
        if any(len(key) < MIN_PRODUCTION_KEY_CHARS for key in keys):
            raise ValueError(
                f"every cursor key must be at least {MIN_PRODUCTION_KEY_CHARS} characters "
                f"in {self.environment}"
            )
        return self

    def secrets(self) -> dict[str, str]:
        keys = split_keys(self.cursor_keys.get_secret_value())
        return {
            **super().secrets(),
            **{f"cursor_keys[{index}]": key for index, key in enumerate(keys)},
        }

    @property
    def cursor_codec(self) -> CursorCodec:
        """The codec of these keys, built once per process."""
        return _codec(self.cursor_keys.get_secret_value())
