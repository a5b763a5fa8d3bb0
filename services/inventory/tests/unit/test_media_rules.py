"""Media's pure rules: the type told by the first bytes, the byte range asked for, and a
HEAD of a file that reads none of it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from starlette.types import Message, Scope

from inventory.media.download import ByteRange, FileBytes, Unsatisfiable, parse_range
from inventory.media.exceptions import UnsupportedMediaType
from inventory.media.service import media_type
from inventory.media.storage import sniff
from shared.methods import HeadAsGetMiddleware


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", "image/png"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),
        (b"GIF89a\x01\x00\x01\x00\x00\x00", None),
        (b"<svg xmlns=", None),
        (b"\x89PN", None),
        (b"", None),
    ],
)
def test_the_type_is_told_by_the_magic_number(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", ByteRange(0, 99)),
        ("bytes=100-", ByteRange(100, 999)),
        ("bytes=-10", ByteRange(990, 999)),
        ("bytes=-5000", ByteRange(0, 999)),
        ("bytes=900-5000", ByteRange(900, 999)),
        ("BYTES = 5-5", ByteRange(5, 5)),
        ("bytes=0-" + "9" * 5000, ByteRange(0, 999)),
        ("bytes=-" + "9" * 5000, ByteRange(0, 999)),
        ("bytes=" + "0" * 5000 + "7-" + "0" * 5000 + "8", ByteRange(7, 8)),
    ],
)
def test_a_single_range_is_clamped_to_the_file(header: str, expected: ByteRange) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,5-6",
        "items=0-1",
        "bytes=5-1",
        "bytes=a-b",
        "bytes=-",
        "bytes",
        "",
        "bytes=\xb2-",  # "²": a digit to str.isdigit, not to int
        "bytes=0-\xb9",
        "bytes=-\xb3",
    ],
)
def test_a_range_a_server_may_ignore_means_the_whole_file(header: str) -> None:
    assert parse_range(header, 1000) is None


@pytest.mark.parametrize(
    "header", ["bytes=1000-", "bytes=1000-2000", "bytes=-0", "bytes=" + "9" * 5000 + "-"]
)
def test_a_range_outside_the_file_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 1000)


def test_the_declared_type_is_read_without_parameters_or_case() -> None:
    assert media_type("Image/PNG; charset=binary") == "image/png"
    with pytest.raises(UnsupportedMediaType):
        media_type("image/gif")
    with pytest.raises(UnsupportedMediaType):
        media_type(None)


def _serve(response: FileBytes, method: str) -> list[Message]:
    sent: list[Message] = []

    async def collect(message: Message) -> None:
        sent.append(message)

    async def nothing() -> Message:
        return {"type": "http.request", "body": b""}

    scope: Scope = {"type": "http", "method": method, "path": "/", "headers": []}
    asyncio.run(HeadAsGetMiddleware(response)(scope, nothing, collect))
    return sent


def test_a_head_of_a_file_sends_its_headers_and_reads_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "image"
    path.write_bytes(b"x" * 300_000)
    whole = FileBytes(path, status_code=200, headers={}, start=0, length=300_000)
    got = _serve(whole, "GET")
    assert b"".join(message.get("body", b"") for message in got) == b"x" * 300_000

    def unread(*args: object) -> bytes:
        raise AssertionError("a HEAD read the file")

    monkeypatch.setattr(os, "pread", unread)
    head = _serve(whole, "HEAD")
    assert head[0] == got[0]  # the same status and headers, Content-Length the GET's
    assert head[1:] == [{"type": "http.response.body", "body": b""}]
