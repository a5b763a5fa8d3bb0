"""Argon2id password hashing, off the event loop."""

from __future__ import annotations

import asyncio
from functools import cached_property

from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    """Hashes and checks passwords with Argon2id (argon2-cffi's RFC 9106 defaults).

    Each hash is deliberately expensive CPU work: it runs in a thread so that one
    login does not stall every other request of the process, and at most ``concurrency``
    run at once, so that a burst of logins leaves the event loop (which serves every other
    request, and runs the logins' own queries) a core to run on. Callers hold no database
    connection while they wait here (identity.service).
    """

    def __init__(self, concurrency: int = 1) -> None:
        self._argon2 = Argon2Hasher()
        self._slots = asyncio.Semaphore(concurrency)

    @cached_property
    def _dummy_hash(self) -> str:
        return self._argon2.hash("a password nobody has")

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._argon2.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; with no hash (unknown user) the same work is done."""
        target = password_hash if password_hash is not None else self._dummy_hash
        try:
            async with self._slots:
                matched = await asyncio.to_thread(self._argon2.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return bool(matched) and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)
