"""Many concurrent callers, one statement: calls that arrive while one runs share the next.

A ``Coalescer`` wraps a ``flush`` that does for many keys at once what each caller wants for
one (insert every pending payment in one statement, say). The first call starts a flush on
the next turn of the event loop, so every call made in the same turn joins it; calls made
while a flush runs wait, and the next flush takes all of them. At a trickle each flush holds
one key and nobody waits for anybody; under load the round trip and the statement's fixed
cost are paid once per flush instead of once per call. One flush runs at a time.

Callers with the same key while it waits share its one item (the first caller's) and its
result. A flush of several keys that raises is not any one caller's failure: which item is
at fault is unknown, so each key is then flushed alone, and a bad item fails only its own
callers (one key's flush that raises fails them; they may retry, and a retry joins a later
flush). A caller that is cancelled leaves the flush to the others.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from shared.tracing import untraced

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R")

Flush = Callable[[Mapping[K, V]], Awaitable[Mapping[K, R]]]
"""Does the work for every key given; the result of each. A key it leaves out fails."""


class Coalescer(Generic[K, V, R]):
    def __init__(self, flush: Flush[K, V, R], *, name: str, max_items: int = 500) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._flush = flush
        self.name = name
        self.max_items = max_items
        self._waiting: dict[K, tuple[V, asyncio.Future[R]]] = {}
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, key: K, item: V) -> R:
        """The result of ``key`` once a flush that holds it has run."""
        entry = self._waiting.get(key)
        if entry is None:
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            # Retrieved here so that a failure whose callers were all cancelled is not
            # reported as never retrieved.
            future.add_done_callback(_retrieve)
            self._waiting[key] = (item, future)
        else:
            future = entry[1]
        if self._flushing is None:
            # A context of its own: a flush serves many callers, so it must not run as the
            # first one (in its request's trace, or untraced because that trace is not
            # sampled, with its request id on the flush's log lines).
            self._flushing = asyncio.create_task(
                self._flush_all(), name=f"{self.name} flush", context=contextvars.Context()
            )
        # Shielded: a cancelled caller must not cancel the result the others wait for.
        return await asyncio.shield(future)

    async def _flush_all(self) -> None:
        # Untraced: no one caller's trace owns the statement; without a parent its spans
        # would be dropped anyway (shared.tracing).
        with untraced():
            await self._flush_waiting()

    async def _flush_waiting(self) -> None:
        try:
            while self._waiting:
                keys = list(self._waiting)[: self.max_items]
                taken = {key: self._waiting.pop(key) for key in keys}
                try:
                    await self._hand_out(taken)
                except BaseException:  # this task cancelled: nobody is left waiting forever
                    for _, future in [*taken.values(), *self._waiting.values()]:
                        if not future.done():
                            future.cancel()
                    self._waiting.clear()
                    raise
        finally:
            self._flushing = None

    async def _hand_out(self, taken: dict[K, tuple[V, asyncio.Future[R]]]) -> None:
        """Flush ``taken`` and give each caller its result; if a flush of several raises,
        flush each key alone (module doc)."""
        try:
            results = await self._flush({key: item for key, (item, _) in taken.items()})
        except Exception as exc:
            if len(taken) == 1:
                [(_, future)] = taken.values()
                future.set_exception(exc)
                return
            for key, entry in taken.items():
                await self._hand_out({key: entry})
            return
        for key, (_, future) in taken.items():
            if key in results:
                future.set_result(results[key])
            else:
                future.set_exception(LookupError(f"{self.name}: no result for {key!r}"))


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
