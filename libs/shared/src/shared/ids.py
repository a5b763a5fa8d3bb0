"""Time-ordered UUIDs (version 7, RFC 9562): rows, events and logs sort by creation, and
indexes on them stay append-mostly. Python 3.11's ``uuid`` has no ``uuid7``."""

from __future__ import annotations

import secrets
import time
import uuid


def new_id() -> uuid.UUID:
    """48 bits of Unix milliseconds, the version, 12 random bits, the variant, 62 random bits."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | secrets.randbits(12) << 64
    value |= 0b10 << 62 | secrets.randbits(62)
    return uuid.UUID(int=value)


def unix_seconds_of(value: uuid.UUID) -> float:
    """When ``new_id`` made ``value``: its Unix milliseconds, in seconds."""
    return (value.int >> 80) / 1000
