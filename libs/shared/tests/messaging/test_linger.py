"""The wait before a batch (shared.messaging.linger): only while batches come close together."""

from __future__ import annotations

import asyncio

from shared.messaging.linger import BUSY_WITHIN_SECONDS, Linger


def test_no_wait_before_the_first_batch() -> None:
    assert Linger(8).pause(now=1000.0) == 0.0


def test_a_wait_while_batches_come_close_together() -> None:
    linger = Linger(8)
    linger.batch_ended(now=1000.0)
    assert linger.pause(now=1000.0 + BUSY_WITHIN_SECONDS / 2) == 0.008


def test_no_wait_after_a_quiet_spell() -> None:
    linger = Linger(8)
    linger.batch_ended(now=1000.0)
    assert linger.pause(now=1000.0 + BUSY_WITHIN_SECONDS) == 0.0


def test_zero_turns_it_off() -> None:
    linger = Linger(0)
    linger.batch_ended(now=1000.0)
    assert linger.pause(now=1000.0) == 0.0


async def test_wait_sleeps_only_when_busy() -> None:
    linger = Linger(50)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await linger.wait()  # nothing ended yet: at once
    linger.batch_ended()
    await linger.wait()  # just ended: about 50 ms
    assert loop.time() - started >= 0.045
