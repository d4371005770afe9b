"""JobStore: jobs with items written atomically, explicit states, resume queries and the ledger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.models import (
    HandoffPhase,
    HandoffPlan,
    ItemResult,
    ItemStatus,
    Job,
    JobParams,
    JobState,
    Outcome,
    Platform,
    Target,
    Verb,
)
from bot.store.db import Store
from bot.store.jobs import DuplicateDelivery, JobStore, SameChange
from bot.store.raw import Prepared, Raw
from tests.sql import run_sql, scalar

X1 = Target(platform=Platform.XPANSE, id="1")
X2 = Target(platform=Platform.XPANSE, id="2")


@pytest_asyncio.fixture
async def jobs(tmp_path: Path, db_url: str) -> AsyncIterator[JobStore]:
    """A JobStore on a fresh database file."""
    store = await Store.open(db_url)
    try:
        yield JobStore(store)
    finally:
        await store.close()


async def new_job(
    jobs: JobStore,
    *,
    verb: Verb = Verb.ASSIGN,
    key: str | None = None,
    targets: list[Target] | None = None,
    assignee: str | None = "U0BOB",
) -> str:
    job = await jobs.submit(
        verb=verb,
        team_id="T1",
        actor_id="U0ALICE",
        targets=targets or [X1, X2],
        params=JobParams(assignee=assignee),
        source="slash",
        interaction_key=key,
    )
    assert isinstance(job, Job), job
    return job.id


async def test_the_job_a_submit_returns_is_the_job_stored(jobs: JobStore) -> None:
    """The job handed back is the row as stored, on either engine (both build it from the values they inserted)."""
    for targets, key in (([X1], "k.one"), ([X1, X2], None)):
        job = await jobs.submit(
            verb=Verb.UNASSIGN if key is None else Verb.ASSIGN,
            team_id="T1",
            actor_id="U0ALICE",
            targets=targets,
            params=JobParams(assignee="U0BOB", actor_name="alice"),
            source="button",
            from_card=True,
            channel_id="C1",
            card_ts="1700000000.000100",
            response_url="https://hooks.slack.com/actions/T1/1/x",
            interaction_key=key,
        )
        assert isinstance(job, Job)
        stored = await jobs.get(job.id)
        assert stored is not None and job.model_dump() == stored.model_dump()
        assert isinstance(job.params, JobParams) and job.verb in (Verb.ASSIGN, Verb.UNASSIGN)
        assert job.state is JobState.QUEUED and len(job.id) == 12


async def test_job_and_items_are_stored_pending_and_a_repeated_interaction_is_refused(jobs: JobStore) -> None:
    """A job is stored with every item pending; the same interaction key a second time creates nothing."""
    job_id = await new_job(jobs, key="trigger.1")
    items = await jobs.items(job_id)
    assert [(i.seq, i.target, i.state) for i in items] == [(0, X1, ItemStatus.PENDING), (1, X2, ItemStatus.PENDING)]
    assert isinstance(
        await jobs.submit(
            verb=Verb.ASSIGN,
            team_id="T1",
            actor_id="U0ALICE",
            targets=[X1],
            params=JobParams(),
            source="slash",
            interaction_key="trigger.1",
        ),
        DuplicateDelivery,
    )
    found = await jobs.by_interaction_key("trigger.1")
    assert found is not None and found.id == job_id


async def test_unfinished_lists_queued_running_and_unreported_jobs(jobs: JobStore) -> None:
    """Resume sees queued, running and finished-but-unreported jobs, never reported or cancelled ones."""
    queued = await new_job(jobs)
    running = await new_job(jobs)
    assert await jobs.move(running, JobState.RUNNING)
    unreported = await new_job(jobs)
    assert await jobs.move(unreported, JobState.RUNNING) and await jobs.move(unreported, JobState.DONE)
    reported = await new_job(jobs)
    assert await jobs.move(reported, JobState.RUNNING) and await jobs.move(reported, JobState.DONE)
    assert await jobs.mark_reported(reported, JobState.DONE)
    cancelled = await new_job(jobs)
    assert await jobs.move(cancelled, JobState.AWAITING_CONFIRM) and await jobs.move(cancelled, JobState.CANCELLED)
    assert [j.id for j in await jobs.unfinished()] == [queued, running, unreported]


async def test_a_report_mark_for_a_state_the_job_has_left_does_not_land(jobs: JobStore) -> None:
    """The preview's poster marks it reported after Confirm queued the apply phase: the mark is dropped."""
    job_id = await new_job(jobs)
    assert await jobs.move(job_id, JobState.AWAITING_CONFIRM)
    assert await jobs.move(job_id, JobState.QUEUED)  # Confirm, while the preview is still being posted
    assert not await jobs.mark_reported(job_id, JobState.AWAITING_CONFIRM)
    job = await jobs.get(job_id)
    assert job is not None and job.reported_at is None
    assert await jobs.move(job_id, JobState.RUNNING) and await jobs.move(job_id, JobState.DONE)
    assert await jobs.mark_reported(job_id, JobState.DONE)
    job = await jobs.get(job_id)
    assert job is not None and job.reported_at is not None


async def test_transition_is_won_once_under_concurrency(jobs: JobStore) -> None:
    """Two concurrent confirmations of one waiting job: exactly one moves it."""
    job_id = await new_job(jobs)
    assert await jobs.move(job_id, JobState.AWAITING_CONFIRM)
    params = JobParams(extra={"phase": "apply"})
    won = await asyncio.gather(*(jobs.move(job_id, JobState.QUEUED, params=params) for _ in range(5)))
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
    unassign = await new_job(jobs, verb=Verb.UNASSIGN, targets=[X1], assignee=None)
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
    flight = await jobs.in_flight(X1, verb=Verb.ASSIGN)
    assert flight is not None and flight[0].id == job_id
    assert await jobs.move(job_id, JobState.RUNNING) and await jobs.move(job_id, JobState.DONE)
    assert await jobs.in_flight(X1, verb=Verb.ASSIGN) is None


async def test_a_row_written_with_the_legacy_extra_dict_loads_as_a_typed_plan(jobs: JobStore) -> None:
    """A job row whose params carry the old untyped ``extra`` dict loads with a typed HandoffPlan."""
    legacy = {
        "assignee": "U0BOB",
        "from_user": "U0ALICE",
        "identities": {"xpanse": "bob@x"},
        "extra": {
            "phase": "apply",
            "counts": {"datadog": 0, "kibana": 2, "xpanse": 1},
            "problems": {"datadog": "Datadog is not configured"},
            "unmapped": ["kibana"],
            "confirmed_by": "U0ALICE",
            "retry_of": "abc123",
            "from_identities": {"xpanse": "alice@x"},
            "assignee_name": "Bob Ops",
            "someone_elses_key": 1,
        },
    }
    await run_sql(
        jobs.store,
        "INSERT INTO jobs (id, verb, state, team_id, actor_id, source, params, created_at, updated_at)"
        " VALUES ('old1', 'handoff', 'awaiting_confirm', 'T1', 'U0ALICE', 'handoff', :params, 1.0, 1.0)",
        params=json.dumps(legacy),
    )
    job = await jobs.get("old1")
    assert job is not None and job.verb is Verb.HANDOFF and job.params.assignee_name == "Bob Ops"
    assert job.params.handoff == HandoffPlan(
        phase=HandoffPhase.APPLY,
        counts={Platform.DATADOG: 0, Platform.KIBANA: 2, Platform.XPANSE: 1},
        problems={Platform.DATADOG: "Datadog is not configured"},
        unmapped=[Platform.KIBANA],
        confirmed_by="U0ALICE",
        retry_of="abc123",
        from_identities={Platform.XPANSE: "alice@x"},
    )
    assert "extra" not in job.params.model_dump()
    assert JobParams(extra={}).handoff is None


async def test_two_replicas_submitting_the_same_change_store_one_job(tmp_path: Path, db_url: str) -> None:
    """Two connections (two replicas, no shared in-process lock) racing one change: one job, the rest told."""
    path = db_url
    first = await Store.open(path)
    second = await Store.open(path)
    try:
        replicas = [JobStore(first), JobStore(second)]

        async def click(n: int) -> object:
            return await replicas[n % 2].submit(
                verb=Verb.ASSIGN,
                team_id="T1",
                actor_id=f"U0CLICK{n}",
                targets=[X1],
                params=JobParams(assignee="U0BOB"),
                source="button",
                from_card=True,
                interaction_key=f"click.{n}",
            )

        answers = await asyncio.gather(*(click(n) for n in range(6)))
        stored = [a for a in answers if isinstance(a, Job)]
        refused = [a for a in answers if isinstance(a, SameChange)]
        assert len(stored) == 1 and len(refused) == 5, answers
        assert all(
            r.message.startswith(
                f"xpanse:1 is already being handled: <@{stored[0].actor_id}> asked to assign it to <@U0BOB>"
            )
            for r in refused
        )
        assert await scalar(first, "SELECT COUNT(*) FROM jobs") == 1
    finally:
        await first.close()
        await second.close()


async def _watch_statements(jobs: JobStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the ack path sends from now on: SQLite, each statement (its first word); PostgreSQL, each
    request to the server (the driver's query log: a pipelined batch is one entry, its first word "BATCH")."""
    sent: list[str] = []
    if jobs.store.dialect == "postgresql":
        await new_job(jobs, targets=[X2], key="warm-up")  # opens the connection kept for the ack path
        urgent = jobs.store._urgent_pg
        assert urgent is not None and urgent._conn is not None
        driver = (await urgent._conn.get_raw_connection()).driver_connection
        assert driver is not None

        def log(query: Any) -> None:
            batch = query.args and isinstance(query.args[0], tuple)
            sent.append(f"BATCH of {len(query.args)}" if batch else query.query.split()[0])

        driver.add_query_logger(log)
        return sent
    original = Raw.execute

    def spy(self: Raw, statement: Prepared, params: Mapping[str, Any]) -> None:
        sent.append(statement.compiled(self.dialect).sql.split()[0])
        original(self, statement, params)

    def spy_many(self: Raw, statement: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:  # one statement per row is the most it could cost
            spy(self, statement, row)

    monkeypatch.setattr(Raw, "execute", spy)
    monkeypatch.setattr(Raw, "execute_many", spy_many)
    return sent


async def test_storing_a_job_sends_the_fewest_statements_on_either_engine(
    jobs: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL each statement is a round trip while Slack waits: storing a job is one call of the stored
    function, and the calls of a burst go to the server together. A repeated delivery is caught by its insert."""
    sent = await _watch_statements(jobs, monkeypatch)
    postgres = jobs.store.dialect == "postgresql"

    await new_job(jobs, targets=[X1], key="one")  # single-item assign: checked for the same change
    # SQLite: key, in flight, just made, the job, its item (BEGIN IMMEDIATE is the item's lock there).
    assert sent == (["SELECT"] if postgres else ["SELECT", "SELECT", "SELECT", "INSERT", "INSERT"])
    sent.clear()
    await new_job(jobs, targets=[X1, X2], key="two")  # two items: only the insert of the job and its items
    assert sent == (["SELECT"] if postgres else ["INSERT", "INSERT", "INSERT"])
    sent.clear()
    again = await jobs.submit(
        verb=Verb.ASSIGN,
        team_id="T1",
        actor_id="U0ALICE",
        targets=[X1, X2],
        params=JobParams(),
        source="slash",
        interaction_key="two",
    )
    assert isinstance(again, DuplicateDelivery) and sent == (["SELECT"] if postgres else ["INSERT"])
    assert await scalar(jobs.store, "SELECT COUNT(*) FROM job_items") == (4 if postgres else 3)  # + the warm-up
    sent.clear()
    # A burst: five requests at once, for five different items.
    burst = [Target(platform=Platform.DATADOG, id=f"burst-{n}") for n in range(5)]
    await asyncio.gather(*(new_job(jobs, targets=[t], key=f"burst.{t.id}") for t in burst))
    if postgres:
        assert len(sent) <= 2 and sent[-1].startswith("BATCH of")  # the rest of the first together
    keys = ", ".join(f"'{t.key}'" for t in burst)
    assert await scalar(jobs.store, f"SELECT COUNT(*) FROM job_items WHERE target IN ({keys})") == 5


async def test_a_change_just_made_is_answered_with_who_made_it(jobs: JobStore) -> None:
    """Once the job ran, the same change within the window is refused "was already assigned to … by …"."""
    job_id = await new_job(jobs, targets=[X1])
    job = await jobs.get(job_id)
    assert job is not None
    await jobs.record_results(job, [(0, ItemResult(target=X1, outcome=Outcome.DONE, after="bob@x"))])
    answer = await jobs.submit(
        verb=Verb.ASSIGN,
        team_id="T1",
        actor_id="U0CAROL",
        targets=[X1],
        params=JobParams(assignee="U0BOB"),
        source="slash",
    )
    assert isinstance(answer, SameChange)
    assert answer.message.startswith("xpanse:1 was already assigned to <@U0BOB> by <@U0ALICE> ")
    assert answer.message.endswith(" s ago")


async def test_moves_outside_the_state_table_are_refused(jobs: JobStore) -> None:
    """A queued job cannot jump to done, and a finished job cannot be queued, cancelled or run again."""
    job_id = await new_job(jobs)
    assert not await jobs.move(job_id, JobState.DONE)
    assert await jobs.move(job_id, JobState.RUNNING) and await jobs.move(job_id, JobState.PARTIAL)
    for state in (JobState.QUEUED, JobState.RUNNING, JobState.CANCELLED, JobState.DONE):
        assert not await jobs.move(job_id, state)
    job = await jobs.get(job_id)
    assert job is not None and job.state is JobState.PARTIAL
    assert all(not s.next_states for s in JobState if s.terminal)


async def test_two_workers_on_one_job_take_each_item_once_and_record_it_once(jobs: JobStore) -> None:
    """A lease that lapsed under a stalled worker: both run the job, but each item is taken by one of
    them, and an item already recorded keeps its first outcome and gets no second ledger line."""
    job_id = await new_job(jobs)
    job = await jobs.get(job_id)
    assert job is not None
    first, second = await asyncio.gather(
        jobs.mark_items(job_id, [0, 1], ItemStatus.RUNNING), jobs.mark_items(job_id, [0, 1], ItemStatus.RUNNING)
    )
    assert sorted(first + second) == [0, 1] and not (set(first) & set(second))
    done = ItemResult(target=X1, outcome=Outcome.DONE, detail="")
    late = ItemResult(target=X1, outcome=Outcome.FAILED, detail="late")
    await asyncio.gather(jobs.record_results(job, [(0, done)]), jobs.record_results(job, [(0, late)]))
    (item, _) = await jobs.items(job_id)
    assert item.state.terminal
    assert len([e for e in await jobs.history(X1) if e.job_id == job_id]) == 1
    assert await jobs.mark_items(job_id, [0], ItemStatus.RUNNING) == []
