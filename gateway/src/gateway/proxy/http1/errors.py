"""What the upstream client raises, and where an upstream is."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


class UpstreamError(Exception):
    """The exchange with the upstream failed."""


class UpstreamUnavailable(UpstreamError):
    """Refused, reset, closed early, or an answer that is not HTTP.

    ``stale``: a reused keep-alive connection broke before any byte of the answer arrived,
    so the upstream cannot have acted on the request unless it closed mid-request; safe to
    retry for an idempotent method.
    """

    def __init__(self, message: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale


class UpstreamTimeout(UpstreamError, TimeoutError):
    """The connect, a read or the whole exchange took longer than allowed."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an upstream is, parsed once from its ``scheme://host:port``."""

    host: str
    port: int
    tls: bool
    host_header: bytes

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        return cls(parts.hostname, port, tls, parts.netloc.encode("ascii"))
