"""A worker pool woken by the web process waits for a burst of stored jobs to end before it claims."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio

from bot.core.workers import SETTLE_ROUNDS, Workers
from bot.models import Job, JobParams, Platform, Target, Verb
from bot.store.claims import JobClaims, new_owner
from bot.store.db import Store
from bot.store.jobs import JobStore


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'triage.db'}") as s:
        yield s


async def stored(store: Store, n: int) -> str:
    job = await JobStore(store).submit(
        verb=Verb.ASSIGN,
        team_id="T1",
        actor_id="U1",
        targets=[Target(platform=Platform.XPANSE, id=str(1000 + n))],
        params=JobParams(assignee="U2"),
        source="slash",
    )
    assert isinstance(job, Job)
    return job.id


def pool(store: Store, *, settle: float) -> tuple[Workers, asyncio.Queue[str], JobClaims]:
    """A pool whose claimed jobs land in a queue nobody drains, so only the claiming is observed."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    service: Any = SimpleNamespace(queue=queue, jobs=JobStore(store), dispatch=None)
    claims = JobClaims(store, owner=new_owner(), lease_s=30)
    # A poll interval longer than the test: every claim here follows a wake-up.
    workers = Workers(service, runner=None, report=None, count=4, claims=claims, poll_interval=60, settle=settle)  # type: ignore[arg-type]
    return workers, queue, claims


async def test_an_idle_pool_claims_only_once_the_burst_of_wakes_has_stopped(store: Store) -> None:
    workers, queue, claims = pool(store, settle=0.3)
    poller = asyncio.create_task(workers._poll(claims))
    try:
        last_wake = 0.0
        for n in range(4):  # a burst: a job stored and the pool woken every 50 ms
            await stored(store, n)
            workers.wake()
            last_wake = time.monotonic()
            await asyncio.sleep(0.05)
            assert queue.empty(), f"claimed during the burst, after wake {n}"
        first = await asyncio.wait_for(queue.get(), 5)
        quiet_for = time.monotonic() - last_wake
        assert quiet_for >= 0.3, f"claimed {quiet_for:.3f} s after the last wake, before the settle window"
        assert {first, *[queue.get_nowait() for _ in range(queue.qsize())]} == {
            j.id for j in await JobStore(store).unfinished()
        }, "the whole burst is claimed together"
    finally:
        poller.cancel()


async def test_a_burst_that_never_stops_waits_at_most_the_settle_bound(store: Store) -> None:
    settle = 0.05
    workers, queue, claims = pool(store, settle=settle)
    poller = asyncio.create_task(workers._poll(claims))
    try:
        await stored(store, 0)
        began = time.monotonic()
        while queue.empty():  # woken every 10 ms, never quiet for a whole window
            workers.wake()
            await asyncio.sleep(0.01)
            assert time.monotonic() - began < 20 * settle * SETTLE_ROUNDS, "the pool never claimed"
        assert time.monotonic() - began >= settle * SETTLE_ROUNDS * 0.9
    finally:
        poller.cancel()


@pytest.mark.parametrize(
    ("settle", "busy"),
    [
        (30.0, True),  # a pool already running a job: a window far longer than the test may take
        (0.0, False),  # no settle window at all
    ],
    ids=["busy-pool-does-not-wait", "settle-zero"],
)
async def test_claims_at_once_when_running_a_job_or_without_a_window(store: Store, settle: float, busy: bool) -> None:
    workers, queue, claims = pool(store, settle=settle)
    if busy:
        workers._busy.add("a-running-job")
    poller = asyncio.create_task(workers._poll(claims))
    try:
        job_id = await stored(store, 0)
        workers.wake()
        assert await asyncio.wait_for(queue.get(), 10) == job_id
    finally:
        poller.cancel()
