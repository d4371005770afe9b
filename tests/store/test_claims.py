"""Job claims: one worker at a time per job, leases that expire, and orphans of dead processes freed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.models import Job, JobParams, JobState, Platform, Target, Verb
from bot.store.claims import JobClaims, new_owner
from bot.store.db import Store
from bot.store.jobs import JobStore
from tests.sql import run_sql


@pytest_asyncio.fixture
async def store(tmp_path: Path, db_url: str) -> AsyncIterator[Store]:
    async with await Store.open(db_url) as s:
        yield s


async def queued(store: Store, n: int = 1) -> str:
    job = await JobStore(store).submit(
        verb=Verb.ASSIGN,
        team_id="T1",
        actor_id="U1",
        targets=[Target(platform=Platform.XPANSE, id=str(n))],
        params=JobParams(assignee="U2"),
        source="slash",
    )
    assert isinstance(job, Job)
    return job.id


async def test_a_job_is_claimed_by_one_owner_until_it_is_released(store: Store) -> None:
    """Of two owners only the first claims; after its release the second can."""
    job_id = await queued(store)
    first = JobClaims(store, owner=new_owner(), lease_s=30)
    second = JobClaims(store, owner=new_owner(), lease_s=30)
    assert await first.claimable(10) == [job_id]
    assert await first.claim(job_id)
    assert not await second.claim(job_id)
    assert await second.claimable(10) == []
    await first.release(job_id)
    assert await second.claim(job_id)


async def test_an_expired_lease_can_be_taken_over_and_renewal_keeps_it(store: Store) -> None:
    """A lease not renewed in time lets another owner in; renewing holds it."""
    job_id = await queued(store)
    first = JobClaims(store, owner=new_owner(), lease_s=30)
    assert await first.claim(job_id)
    await run_sql(store, "UPDATE jobs SET lease_until = 0")
    assert await first.renew() == 1
    assert not await JobClaims(store, owner=new_owner(), lease_s=30).claim(job_id)
    await run_sql(store, "UPDATE jobs SET lease_until = 0")
    assert await JobClaims(store, owner=new_owner(), lease_s=30).claim(job_id)


async def test_claims_of_a_dead_process_or_a_retired_pool_are_freed_at_start(store: Store) -> None:
    """A same-host owner whose process exited, or a stopped pool here, loses its claims; live ones keep theirs."""
    gone = subprocess.run(  # noqa: ASYNC221 - a process that exits at once, for its pid
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    dead = JobClaims(store, owner=f"{new_owner().split(':')[0]}:{int(gone.stdout)}:dead", lease_s=30)
    retired = JobClaims(store, owner=new_owner(), lease_s=30)
    live = JobClaims(store, owner=new_owner(), lease_s=30)
    jobs = [await queued(store, n) for n in range(1, 4)]
    for claims, job_id in zip((dead, retired, live), jobs, strict=True):
        assert await claims.claim(job_id)
    retired.retire()
    fresh = JobClaims(store, owner=new_owner(), lease_s=30)
    assert await fresh.free_orphans() == 2
    assert sorted(await fresh.claimable(10)) == sorted(jobs[:2])


@pytest.mark.parametrize("state", [JobState.DONE, JobState.AWAITING_CONFIRM])
async def test_only_queued_or_running_jobs_are_claimable(store: Store, state: JobState) -> None:
    """Finished and waiting jobs are not polled for."""
    job_id = await queued(store)
    await run_sql(store, "UPDATE jobs SET state = :state WHERE id = :id", state=state.value, id=job_id)
    assert await JobClaims(store, owner=new_owner(), lease_s=30).claimable(10) == []
