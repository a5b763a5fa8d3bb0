"""Periodic jobs (shared.messaging.jobs): one loop, its error handling, its metrics and its stop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.messaging import PeriodicJob
from shared.messaging.jobs import PeriodicJobs

from .conftest import metric


async def _until(condition: asyncio.Event) -> None:
    await asyncio.wait_for(condition.wait(), 10)


async def test_a_job_runs_at_once_and_again_after_each_interval() -> None:
    runs = 0
    third = asyncio.Event()

    async def run() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third.set()

    jobs = PeriodicJobs([PeriodicJob("jobs test repeat", interval=0.01, run=run)])
    jobs.start()
    await _until(third)
    await jobs.stop()
    assert metric("worker_job_runs_total", job="jobs test repeat", outcome="done") >= 3


async def test_a_failed_run_is_logged_counted_and_the_next_one_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = 0
    recovered = asyncio.Event()

    async def run() -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionRefusedError("the database is away")
        recovered.set()

    jobs = PeriodicJobs([PeriodicJob("jobs test failure", interval=0.01, run=run)])
    with caplog.at_level(logging.ERROR, logger="shared.messaging.jobs"):
        jobs.start()
        await _until(recovered)
        await jobs.stop()
    assert metric("worker_job_runs_total", job="jobs test failure", outcome="failed") == 1
    assert any(r.getMessage() == "jobs test failure failed" and r.exc_info for r in caplog.records)


async def test_stop_lets_the_run_in_progress_finish_and_starts_no_other() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished = 0

    async def run() -> None:
        nonlocal finished
        started.set()
        await release.wait()
        finished += 1

    jobs = PeriodicJobs([PeriodicJob("jobs test stop", interval=0.01, run=run)])
    jobs.start()
    await _until(started)
    stopping = asyncio.create_task(jobs.stop())
    await asyncio.sleep(0)
    assert not stopping.done()
    release.set()
    await stopping
    assert finished == 1


async def test_pause_first_waits_an_interval_before_the_first_run() -> None:
    ran = False

    async def run() -> None:
        nonlocal ran
        ran = True

    jobs = PeriodicJobs([PeriodicJob("jobs test pause", interval=3600, run=run, pause_first=True)])
    jobs.start()
    await asyncio.sleep(0.05)
    await jobs.stop()
    assert not ran


def test_an_interval_must_be_positive_and_jitter_not_negative() -> None:
    async def run() -> None:
        return None

    with pytest.raises(ValueError, match="positive interval"):
        PeriodicJob("bad", interval=0, run=run)
    with pytest.raises(ValueError, match="positive interval"):
        PeriodicJob("bad", interval=1, run=run, jitter=-1)
