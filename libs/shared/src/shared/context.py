"""Per-request context carried in contextvars: it follows the request into every log line
and, later, into the events the request causes (as their correlation id)."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Accept what a client or an upstream proxy plausibly sends (UUIDs, ULIDs, hex, tokens),
# bounded so a log line or an event cannot be bloated or forged with control characters.
_WELL_FORMED_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def is_well_formed_request_id(value: str) -> bool:
    return _WELL_FORMED_REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    # 128 random bits as hex, like a uuid4 without its version bits, and no UUID object built.
    return os.urandom(16).hex()


def accepted_request_id(offered: str | None) -> str:
    """The id a request goes by: the one it offers when well formed, otherwise a new one."""
    if offered and is_well_formed_request_id(offered):
        return offered
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()
