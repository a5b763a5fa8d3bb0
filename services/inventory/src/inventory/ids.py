"""Time-ordered UUIDs (version 7 layout), so rows and logs sort by creation."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> uuid.UUID:
    """48 bits of Unix milliseconds, version 7, variant, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big") & ((1 << 74) - 1)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | (rand >> 62) << 64  # version, then 12 random bits
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))  # RFC 9562 variant, then 62 random bits
    return uuid.UUID(int=value)
