"""Opaque, tamper-proof list cursors: the position as JSON, signed with HMAC-SHA256.

A client can hold a cursor but neither read nor forge one: anything altered, truncated or
minted for another list is refused as a 400, never a 500 or a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import orjson

from shared.errors import DomainError

_SIGNATURE_BYTES = 16  # 128 bits of HMAC-SHA256: far beyond guessing, keeps cursors short


class InvalidCursor(DomainError):
    status = 400
    title = "Invalid cursor"
    type = "/problems/invalid-cursor"

    def __init__(self) -> None:
        super().__init__("The cursor is not valid for this list; start again without one.")


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, kind: str, body: bytes) -> bytes:
    # The list kind is signed too, so a products cursor cannot page the low-stock list.
    return hmac.new(secret, kind.encode() + b"\x00" + body, hashlib.sha256).digest()[
        :_SIGNATURE_BYTES
    ]


def encode_cursor(*, secret: str, kind: str, after: str) -> str:
    """A cursor that resumes the ``kind`` list after the key ``after``."""
    body = orjson.dumps({"after": after})
    return f"{_b64encode(body)}.{_b64encode(_signature(secret.encode(), kind, body))}"


def decode_cursor(*, secret: str, kind: str, cursor: str) -> str:
    """The key a cursor resumes after; ``InvalidCursor`` unless it is intact and ours."""
    body_part, _, signature_part = cursor.partition(".")
    try:
        body = _b64decode(body_part)
        signature = _b64decode(signature_part)
    except (binascii.Error, ValueError):
        raise InvalidCursor() from None
    if not hmac.compare_digest(signature, _signature(secret.encode(), kind, body)):
        raise InvalidCursor()
    try:
        after = orjson.loads(body)["after"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise InvalidCursor() from None
    if not isinstance(after, str):
        raise InvalidCursor()
    return after
