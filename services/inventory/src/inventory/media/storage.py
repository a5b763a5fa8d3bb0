"""The media files on the shared file system (``MEDIA_ROOT``), named by their sha256.

An upload is written to ``tmp/<random>.part`` (hashed and type-checked as it arrives),
fsynced, then renamed to ``content/ab/cd/<sha256>`` and the directory fsynced: a reader of
``content/`` never sees a half file, on any replica. Both folders are on the same file
system, so the rename is atomic there too (NFS, GlusterFS, CephFS). File work runs in
threads so that the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from inventory.media.exceptions import (
    IncompleteUpload,
    MediaTooLarge,
    StorageFull,
    UnsupportedMediaType,
)

logger = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")
# Bytes gathered before one write (one thread hop); the body arrives in smaller pieces.
_WRITE_BYTES = 262_144
READ_BYTES = 262_144
# What no more space, a quota or a file size limit look like to a writer.
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_MAGIC_BYTES = 12


def sniff(head: bytes) -> str | None:
    """The image type the first bytes announce (magic numbers), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= _MAGIC_BYTES and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _check_type(head: bytes, declared: str) -> None:
    found = sniff(head)
    if found != declared:
        what = f"a {found} file" if found else "no image this service accepts"
        raise UnsupportedMediaType(f"Content-Type is {declared}, but the bytes are {what}.")


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A whole upload, fsynced under a temporary name, not yet visible."""

    path: Path
    sha256: str
    size: int


def _write(fd: int, data: bytes, digest: hashlib._Hash) -> None:
    digest.update(data)  # hashlib releases the GIL for large buffers: hashed in the thread
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MediaStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.content = self.root / "content"

    def path_of(self, sha256: str) -> Path:
        return self.content / sha256[:2] / sha256[2:4] / sha256

    async def stage(
        self, chunks: AsyncIterator[bytes], *, content_type: str, limit: int
    ) -> StagedFile:
        """Write the body to a temporary file, checking its type from the first bytes and
        its size as it arrives; on any failure (a refusal, a client gone, a full disk) the
        temporary file is removed before the error propagates."""
        await asyncio.to_thread(self.tmp.mkdir, parents=True, exist_ok=True)
        path = self.tmp / f"{uuid.uuid4().hex}.part"
        fd: int | None = await asyncio.to_thread(
            os.open, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644
        )
        assert fd is not None
        digest = hashlib.sha256()
        size = 0
        pending = bytearray()
        checked = False
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise MediaTooLarge(limit)
                pending += chunk
                if not checked and len(pending) >= _MAGIC_BYTES:
                    _check_type(bytes(pending[:_MAGIC_BYTES]), content_type)
                    checked = True
                if len(pending) >= _WRITE_BYTES:
                    await asyncio.to_thread(_write, fd, bytes(pending), digest)
                    pending.clear()
            if size == 0:
                raise IncompleteUpload("The request has no body: send the image's bytes.")
            if not checked:
                _check_type(bytes(pending), content_type)
            if pending:
                await asyncio.to_thread(_write, fd, bytes(pending), digest)
            closing, fd = fd, None
            await asyncio.to_thread(_fsync_close, closing)
        except OSError as exc:
            self._abandon(fd, path)
            if exc.errno in _FULL:
                raise StorageFull() from None
            raise
        except BaseException:
            # Also on cancellation: done synchronously, an await may not run any more.
            self._abandon(fd, path)
            raise
        return StagedFile(path=path, sha256=digest.hexdigest(), size=size)

    @staticmethod
    def _abandon(fd: int | None, path: Path) -> None:
        if fd is not None:
            os.close(fd)
        path.unlink(missing_ok=True)

    def discard(self, staged: StagedFile) -> None:
        staged.path.unlink(missing_ok=True)

    def publish(self, staged: StagedFile) -> Path:
        """Make a staged file visible under its content name, durably (blocking: run it in a
        thread). The same bytes stored before are replaced by an identical file."""
        final = self.path_of(staged.sha256)
        created = not final.parent.is_dir()
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, final)
        _fsync_dir(final.parent)
        if created:
            _fsync_dir(final.parent.parent)
            _fsync_dir(final.parent.parent.parent)
        return final

    def remove(self, sha256: str) -> bool:
        """Remove a content file (blocking); whether there was one."""
        try:
            self.path_of(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def stale_temporary_files(self, older_than_seconds: float) -> Iterator[Path]:
        """Temporary files last written longer ago than that: left by a crash."""
        yield from self._older(self.tmp.glob("*.part"), older_than_seconds)

    def stale_content(self, older_than_seconds: float) -> Iterator[str]:
        """The sha256 of every content file last written longer ago than that. Any other
        file under ``content/`` (an NFS client's ``.nfsXXXX``, a file in the wrong folder)
        was not written by this service: it is left alone, and logged once per listing."""
        strays = 0
        example: Path | None = None

        def published() -> Iterator[Path]:
            nonlocal strays, example
            for path in self.content.glob("*/*/*"):
                if _SHA256.fullmatch(path.name) and path == self.path_of(path.name):
                    yield path
                else:
                    strays += 1
                    example = example or path

        for path in self._older(published(), older_than_seconds):
            yield path.name
        if strays:
            logger.info(
                "media sweep left %d files under %s that are not content, such as %s",
                strays,
                self.content,
                example,
            )

    @staticmethod
    def _older(paths: Iterator[Path], seconds: float) -> Iterator[Path]:
        cutoff = time.time() - seconds
        for path in paths:
            try:
                if path.stat().st_mtime < cutoff:
                    yield path
            except FileNotFoundError:
                continue
