from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from shared.coalescing import Coalescer


class Doubler:
    """A flush that doubles every item, records what each flush held, and can be held."""

    def __init__(self) -> None:
        self.flushes: list[dict[str, int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_with: Exception | None = None
        self.leave_out: set[str] = set()
        self.started = asyncio.Event()  # set when the first flush starts

    async def __call__(self, items: Mapping[str, int]) -> dict[str, int]:
        self.flushes.append(dict(items))
        self.started.set()
        await self.release.wait()
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        return {key: 2 * item for key, item in items.items() if key not in self.leave_out}


async def test_calls_made_in_one_turn_share_one_flush() -> None:
    flush = Doubler()
    coalescer = Coalescer(flush, name="test")

    results = await asyncio.gather(*(coalescer.submit(f"k{i}", i) for i in range(5)))

    assert results == [0, 2, 4, 6, 8]
    assert flush.flushes == [{"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4}]


async def test_calls_made_while_a_flush_runs_wait_and_share_the_next() -> None:
    flush = Doubler()
    flush.release.clear()
    coalescer = Coalescer(flush, name="test")
    first = asyncio.ensure_future(coalescer.submit("a", 1))
    await flush.started.wait()
    later = [asyncio.ensure_future(coalescer.submit(key, 10)) for key in ("b", "c")]
    await asyncio.sleep(0.01)
    assert flush.flushes == [{"a": 1}]  # the late ones wait for the flush in flight

    flush.release.set()

    assert await first == 2
    assert await asyncio.gather(*later) == [20, 20]
    assert flush.flushes == [{"a": 1}, {"b": 10, "c": 10}]


async def test_callers_with_the_same_key_share_the_first_item_and_its_result() -> None:
    flush = Doubler()
    coalescer = Coalescer(flush, name="test")

    results = await asyncio.gather(coalescer.submit("a", 1), coalescer.submit("a", 7))

    assert list(results) == [2, 2]
    assert flush.flushes == [{"a": 1}]


async def test_a_failed_flush_fails_its_callers_and_not_the_next_flush() -> None:
    flush = Doubler()
    flush.fail_with = RuntimeError("the statement failed")
    coalescer = Coalescer(flush, name="test")

    with pytest.raises(RuntimeError):
        await coalescer.submit("a", 1)
    assert await coalescer.submit("a", 1) == 2  # a retry joins a new flush


class RefusesBad(Doubler):
    """A flush that raises whenever it holds the key ``bad``, as a statement fails for all
    its rows when one of them is refused."""

    async def __call__(self, items: Mapping[str, int]) -> dict[str, int]:
        if "bad" in items:
            self.flushes.append(dict(items))
            raise ValueError("a row was refused")
        return await super().__call__(items)


async def test_a_bad_item_fails_only_its_own_callers() -> None:
    flush = RefusesBad()
    coalescer = Coalescer(flush, name="test")

    results = await asyncio.gather(
        coalescer.submit("a", 1),
        coalescer.submit("bad", 2),
        coalescer.submit("c", 3),
        return_exceptions=True,
    )

    assert (results[0], results[2]) == (2, 6)
    assert isinstance(results[1], ValueError)
    # The flush of all three failed; each key was then flushed alone.
    assert flush.flushes == [{"a": 1, "bad": 2, "c": 3}, {"a": 1}, {"bad": 2}, {"c": 3}]


async def test_a_key_the_flush_leaves_out_fails_alone() -> None:
    flush = Doubler()
    flush.leave_out = {"b"}
    coalescer = Coalescer(flush, name="test")

    results = await asyncio.gather(
        coalescer.submit("a", 1), coalescer.submit("b", 2), return_exceptions=True
    )

    assert results[0] == 2
    assert isinstance(results[1], LookupError)


async def test_a_cancelled_caller_leaves_the_result_to_the_others() -> None:
    flush = Doubler()
    flush.release.clear()
    coalescer = Coalescer(flush, name="test")
    impatient = asyncio.ensure_future(coalescer.submit("a", 1))
    patient = asyncio.ensure_future(coalescer.submit("a", 1))
    await flush.started.wait()

    impatient.cancel()
    flush.release.set()

    assert await patient == 2
    with pytest.raises(asyncio.CancelledError):
        await impatient


async def test_a_flush_holds_at_most_max_items() -> None:
    flush = Doubler()
    coalescer = Coalescer(flush, name="test", max_items=2)

    results = await asyncio.gather(*(coalescer.submit(f"k{i}", i) for i in range(5)))

    assert results == [0, 2, 4, 6, 8]
    assert [len(items) for items in flush.flushes] == [2, 2, 1]
