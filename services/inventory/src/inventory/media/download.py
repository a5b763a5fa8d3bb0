"""Serving a stored file: one byte range at most (RFC 9110 section 14), streamed from disk."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from inventory.media.storage import READ_BYTES
from shared.methods import answers_head


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive, as Content-Range counts

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """A well-formed range that no byte of the file satisfies (416)."""


# More digits than any file's size has: such a position is past every end.
_MAX_POSITION_DIGITS = 18


def _position(text: str) -> int | None:
    """A byte position written in ASCII digits; None for anything else.

    ``str.isdigit`` also accepts "²" (a header decoded as latin-1 may carry it), which
    ``int`` refuses, and ``int`` refuses over 4,300 digits: both are answered here, never
    by an error.
    """
    if not text or not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else 10**_MAX_POSITION_DIGITS


def parse_range(header: str, size: int) -> ByteRange | None:
    """The one range asked for; None means "send the whole file": a malformed header, another
    unit or several ranges, which a server may ignore (section 14.2)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first, last = _position(first_text), _position(last_text)
    if not dash or (first is None and first_text) or (last is None and last_text):
        return None
    if first is None:  # a suffix: the last N bytes
        if last is None:
            return None
        if last == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - last), size - 1)
    if last is not None and last < first:
        return None
    if first >= size:
        raise Unsatisfiable
    end = last if last is not None else size - 1
    return ByteRange(first, min(end, size - 1))


class FileBytes(Response):
    """Bytes ``start``..``start + length`` of a file, sent in pieces read in a thread; to a
    HEAD, only the headers (nothing is read)."""

    def __init__(
        self, path: Path, *, status_code: int, headers: dict[str, str], start: int, length: int
    ) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self.headers["content-length"] = str(length)
        self.path = path
        self.start = start
        self.length = length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Opened before the status goes out, so that a vanished file is still a clean error.
        fd = await asyncio.to_thread(os.open, self.path, os.O_RDONLY)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            offset, left = self.start, 0 if answers_head(scope) else self.length
            if left == 0:  # an empty file, or a HEAD: the headers say it all
                await send({"type": "http.response.body", "body": b""})
            while left > 0:
                piece = await asyncio.to_thread(os.pread, fd, min(READ_BYTES, left), offset)
                if not piece:
                    raise OSError(f"{self.path} ended before its recorded size")
                offset += len(piece)
                left -= len(piece)
                await send({"type": "http.response.body", "body": piece, "more_body": left > 0})
        finally:
            os.close(fd)
