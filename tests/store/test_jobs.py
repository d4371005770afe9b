"""JobStore: jobs with items written atomically, explicit states, resume queries and the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.models import ItemResult, Outcome, Platform, Target
from bot.store.db import Store
from bot.store.jobs import ItemStatus, JobParams, JobState, JobStore

X1 = Target(platform=Platform.XPANSE, id="1")
X2 = Target(platform=Platform.XPANSE, id="2")


@pytest_asyncio.fixture
async def jobs(tmp_path: Path) -> AsyncIterator[JobStore]:
    """A JobStore on a fresh database file."""
    store = await Store.open(tmp_path / "t.db")
    try:
        yield JobStore(store)
    finally:
        await store.close()


async def new_job(
    jobs: JobStore,
    *,
    verb: str = "assign",
    key: str | None = None,
    targets: list[Target] | None = None,
    assignee: str | None = "U0BOB",
) -> str:
    job = await jobs.create(
        verb=verb,
        team_id="T1",
        actor_id="U0ALICE",
        targets=targets or [X1, X2],
        params=JobParams(assignee=assignee),
        source="slash",
        interaction_key=key,
    )
    assert job is not None
    return job.id


async def test_job_and_items_are_stored_pending_and_a_repeated_interaction_is_refused(jobs: JobStore) -> None:
    """A job is stored with every item pending; the same interaction key a second time creates nothing."""
    job_id = await new_job(jobs, key="trigger.1")
    items = await jobs.items(job_id)
    assert [(i.seq, i.target, i.state) for i in items] == [(0, X1, ItemStatus.PENDING), (1, X2, ItemStatus.PENDING)]
    assert (
        await jobs.create(
            verb="assign",
            team_id="T1",
            actor_id="U0ALICE",
            targets=[X1],
            params=JobParams(),
            source="slash",
            interaction_key="trigger.1",
        )
        is None
    )
    found = await jobs.by_interaction_key("trigger.1")
    assert found is not None and found.id == job_id


async def test_unfinished_lists_queued_running_and_unreported_jobs(jobs: JobStore) -> None:
    """Resume sees queued, running and finished-but-unreported jobs, never reported or cancelled ones."""
    queued = await new_job(jobs)
    running = await new_job(jobs)
    await jobs.set_state(running, JobState.RUNNING)
    unreported = await new_job(jobs)
    await jobs.set_state(unreported, JobState.DONE)
    reported = await new_job(jobs)
    await jobs.set_state(reported, JobState.DONE)
    await jobs.mark_reported(reported)
    cancelled = await new_job(jobs)
    await jobs.set_state(cancelled, JobState.CANCELLED)
    assert [j.id for j in await jobs.unfinished()] == [queued, running, unreported]


async def test_transition_is_won_once_under_concurrency(jobs: JobStore) -> None:
    """Two concurrent confirmations of one waiting job: exactly one moves it."""
    job_id = await new_job(jobs)
    await jobs.set_state(job_id, JobState.AWAITING_CONFIRM)
    params = JobParams(extra={"phase": "apply"})
    won = await asyncio.gather(
        *(jobs.reopen(job_id, from_state=JobState.AWAITING_CONFIRM, params=params) for _ in range(5))
    )
    assert sorted(won) == [False, False, False, False, True]
    job = await jobs.get(job_id)
    assert job is not None and job.state is JobState.QUEUED


async def test_results_go_to_items_and_ledger_in_one_step(jobs: JobStore) -> None:
    """Each recorded result sets the item's terminal state and appends before → after with the job id."""
    job_id = await new_job(jobs)
    job = await jobs.get(job_id)
    assert job is not None
    await jobs.record_results(
        job,
        [
            (0, ItemResult(target=X1, outcome=Outcome.DONE, before="a@x", after="b@x")),
            (1, ItemResult(target=X2, outcome=Outcome.FAILED, detail="boom", status=500)),
        ],
    )
    items = await jobs.items(job_id)
    assert [i.state for i in items] == [ItemStatus.DONE, ItemStatus.FAILED]
    ledger = await jobs.ledger_since(0)
    assert [(e.job_id, e.target, e.before, e.after, e.outcome, e.status) for e in ledger] == [
        (job_id, "xpanse:1", "a@x", "b@x", "done", None),
        (job_id, "xpanse:2", None, None, "failed", 500),
    ]


async def test_park_returns_running_items_to_pending(jobs: JobStore) -> None:
    """Parking at shutdown puts in-flight items back to pending and leaves settled ones alone."""
    job_id = await new_job(jobs)
    await jobs.mark_items(job_id, [0, 1], ItemStatus.RUNNING)
    job = await jobs.get(job_id)
    assert job is not None
    await jobs.record_results(job, [(0, ItemResult(target=X1, outcome=Outcome.DONE))])
    assert await jobs.park(job_id, detail="parked") == 1
    assert [i.state for i in await jobs.items(job_id)] == [ItemStatus.DONE, ItemStatus.PENDING]


async def test_latest_change_and_held_by_follow_the_newest_assignment(jobs: JobStore) -> None:
    """ "assign, unassign" is not a recent assign; held_by forgets an item once it was unassigned."""
    assign = await new_job(jobs, targets=[X1])
    job = await jobs.get(assign)
    assert job is not None
    await jobs.record_results(job, [(0, ItemResult(target=X1, outcome=Outcome.DONE, after="bob@x"))])
    assert await jobs.recent_change(X1, verb="assign", assignee="U0BOB", within=60) is not None
    assert await jobs.recent_change(X1, verb="assign", assignee="U0CAROL", within=60) is None
    assert await jobs.held_by(platform=Platform.XPANSE, identity="bob@x") == [X1]
    latest = await jobs.latest_change(X1)
    assert latest is not None and latest.assignee == "U0BOB"
    unassign = await new_job(jobs, verb="unassign", targets=[X1], assignee=None)
    job = await jobs.get(unassign)
    assert job is not None
    await jobs.record_results(job, [(0, ItemResult(target=X1, outcome=Outcome.DONE, before="bob@x"))])
    assert await jobs.recent_change(X1, verb="assign", assignee="U0BOB", within=60) is None
    assert await jobs.held_by(platform=Platform.XPANSE, identity="bob@x") == []
    known = await jobs.last_known(X1)
    assert known is not None and known.after is None and known.verb == "unassign"


async def test_in_flight_finds_pending_items_of_live_jobs_only(jobs: JobStore) -> None:
    """A queued job's pending item is in flight; once the job is done it no longer is."""
    job_id = await new_job(jobs, targets=[X1])
    flight = await jobs.in_flight(X1, verb="assign")
    assert flight is not None and flight[0].id == job_id
    await jobs.set_state(job_id, JobState.DONE)
    assert await jobs.in_flight(X1, verb="assign") is None
