"""Doubling pauses, capped: the backoff of provider retries and of owed refunds.

A module of its own, importing nothing of the service, so that the settings can check a
retry budget without importing the provider package (which reads the settings).
"""

from __future__ import annotations

# Past this exponent the cap has long been reached, and 2.0**n would overflow.
_MAX_EXPONENT = 60


def doubling_pause(retry: int, *, initial: float, cap: float) -> float:
    """The pause before retry number ``retry`` (0 for the first): ``initial * 2**retry``,
    at most ``cap``."""
    return min(initial * 2.0 ** min(retry, _MAX_EXPONENT), cap)
