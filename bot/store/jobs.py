"""Durable jobs, their items, and the ledger of every change the bot made.

A job is written, with all its items, before Slack is acknowledged; workers
then move each item through explicit states. Every item ends in a terminal
state, and a job is finished only once its outcome was reported in Slack.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from bot.models import ItemResult, Outcome, Platform, Target
from bot.store.db import Store

# Verbs whose successful ledger lines change who holds an item.
ASSIGNMENT_VERBS = ("assign", "unassign", "handoff", "resolve")


class JobState(StrEnum):
    QUEUED = "queued"
    AWAITING_CONFIRM = "awaiting_confirm"  # a handoff preview waiting for Confirm / Cancel
    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.DONE, JobState.PARTIAL, JobState.FAILED, JobState.CANCELLED)


class ItemStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # sent (or about to be); on resume, re-applied if idempotent
    DONE = Outcome.DONE.value
    WARNING = Outcome.WARNING.value
    NOT_FOUND = Outcome.NOT_FOUND.value
    FAILED = Outcome.FAILED.value
    SKIPPED = Outcome.SKIPPED.value

    @property
    def terminal(self) -> bool:
        return self not in (ItemStatus.PENDING, ItemStatus.RUNNING)


class JobParams(BaseModel):
    """Everything a verb needs beyond its targets, as chosen by the actor."""

    assignee: str | None = None  # Slack user id of the new assignee
    from_user: str | None = None  # handoff: Slack user id of the outgoing person
    case: str | None = None
    reason: str | None = None
    comment: str | None = None
    text: str | None = None
    severity: str | None = None
    # Resolved platform identities, filled by the worker before the writes.
    identities: dict[str, str] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)


class Job(BaseModel):
    id: str
    verb: str
    state: JobState
    team_id: str
    actor_id: str
    channel_id: str | None = None
    card_ts: str | None = None
    thread_ts: str | None = None
    response_url: str | None = None
    source: str
    interaction_key: str | None = None
    params: JobParams
    summary: str | None = None
    created_at: float
    updated_at: float
    reported_at: float | None = None


class JobItem(BaseModel):
    job_id: str
    seq: int
    target: Target
    state: ItemStatus
    detail: str = ""
    status: int | None = None
    before: str | None = None
    after: str | None = None
    updated_at: float = 0.0

    def result(self) -> ItemResult:
        outcome = Outcome(self.state.value) if self.state.terminal else Outcome.FAILED
        return ItemResult(
            target=self.target,
            outcome=outcome,
            detail=self.detail,
            status=self.status,
            before=self.before,
            after=self.after,
        )


class LedgerEntry(BaseModel):
    id: int
    at: float
    job_id: str | None
    team_id: str
    actor_id: str
    verb: str
    platform: str | None
    target: str | None
    before: str | None
    after: str | None
    outcome: str
    detail: str
    status: int | None


class RecentChange(BaseModel):
    """The latest successful assignment-type change of an item, with the assignee it asked for."""

    entry: LedgerEntry
    assignee: str | None = None  # Slack user id the job assigned to (None for unassign/resolve)


def _target_from_row(row: Any) -> Target:
    return Target(platform=Platform(row["platform"]), id=row["item_id"], space=row["space"])


class JobStore:
    """Jobs, items and the ledger in the shared store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- jobs ----------------------------------------------------------------------------

    async def create(
        self,
        *,
        verb: str,
        team_id: str,
        actor_id: str,
        targets: Sequence[Target],
        params: JobParams,
        source: str,
        channel_id: str | None = None,
        card_ts: str | None = None,
        thread_ts: str | None = None,
        response_url: str | None = None,
        interaction_key: str | None = None,
        state: JobState = JobState.QUEUED,
    ) -> Job | None:
        """Persist a job and its items in one transaction; None if ``interaction_key`` was seen before."""
        now = time.time()
        job_id = uuid.uuid4().hex[:12]
        async with self.store.transaction(urgent=True):  # Slack is waiting for this one
            cur = await self.store.conn.execute(
                "INSERT OR IGNORE INTO jobs (id, verb, state, team_id, actor_id, channel_id, card_ts,"
                " thread_ts, response_url, source, interaction_key, params, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job_id,
                    verb,
                    state.value,
                    team_id,
                    actor_id,
                    channel_id,
                    card_ts,
                    thread_ts,
                    response_url,
                    source,
                    interaction_key,
                    params.model_dump_json(),
                    now,
                    now,
                ),
            )
            if cur.rowcount == 0:
                return None
            await self._insert_items(job_id, targets, start=0, now=now)
        return await self.get(job_id)

    async def _insert_items(self, job_id: str, targets: Iterable[Target], *, start: int, now: float) -> None:
        await self.store.conn.executemany(
            "INSERT INTO job_items (job_id, seq, platform, target, space, item_id, state, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [
                (job_id, start + n, t.platform.value, t.key, t.space, t.id, ItemStatus.PENDING.value, now)
                for n, t in enumerate(targets)
            ],
        )

    async def replace_items(self, job_id: str, targets: Sequence[Target]) -> None:
        """Set a job's items (a handoff fills them once the preview is collected)."""
        async with self.store.transaction():
            await self.store.conn.execute("DELETE FROM job_items WHERE job_id = ?", (job_id,))
            await self._insert_items(job_id, targets, start=0, now=time.time())

    async def by_interaction_key(self, key: str) -> Job | None:
        """The job created for one Slack interaction (trigger id, action ts …), if any."""
        async with self.store.conn.execute("SELECT * FROM jobs WHERE interaction_key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return self._job(row) if row else None

    async def get(self, job_id: str) -> Job | None:
        async with self.store.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        return self._job(row) if row else None

    @staticmethod
    def _job(row: Any) -> Job:
        data = dict(row)
        data["params"] = JobParams.model_validate_json(data["params"])
        return Job.model_validate(data)

    async def unfinished(self) -> list[Job]:
        """Jobs that still have work or reporting to do, oldest first."""
        async with self.store.conn.execute(
            "SELECT * FROM jobs WHERE state IN (?, ?) OR (reported_at IS NULL AND state != ?) ORDER BY created_at",
            (JobState.QUEUED.value, JobState.RUNNING.value, JobState.CANCELLED.value),
        ) as cur:
            rows = await cur.fetchall()
        return [self._job(r) for r in rows]

    async def set_state(self, job_id: str, state: JobState, *, summary: str | None = None) -> None:
        async with self.store.transaction():
            await self.store.conn.execute(
                "UPDATE jobs SET state = ?, summary = COALESCE(?, summary), updated_at = ? WHERE id = ?",
                (state.value, summary, time.time(), job_id),
            )

    async def transition(self, job_id: str, *, from_state: JobState, to_state: JobState) -> bool:
        """Move a job between states atomically; False if it was not in ``from_state`` (a race lost)."""
        async with self.store.transaction():
            cur = await self.store.conn.execute(
                "UPDATE jobs SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                (to_state.value, time.time(), job_id, from_state.value),
            )
            return cur.rowcount == 1

    async def update_params(self, job_id: str, params: JobParams) -> None:
        async with self.store.transaction():
            await self.store.conn.execute(
                "UPDATE jobs SET params = ?, updated_at = ? WHERE id = ?",
                (params.model_dump_json(), time.time(), job_id),
            )

    async def set_message(
        self, job_id: str, *, channel_id: str | None, card_ts: str | None, thread_ts: str | None
    ) -> None:
        async with self.store.transaction():
            await self.store.conn.execute(
                "UPDATE jobs SET channel_id = COALESCE(?, channel_id), card_ts = COALESCE(?, card_ts),"
                " thread_ts = COALESCE(?, thread_ts), updated_at = ? WHERE id = ?",
                (channel_id, card_ts, thread_ts, time.time(), job_id),
            )

    async def mark_reported(self, job_id: str) -> None:
        async with self.store.transaction():
            await self.store.conn.execute("UPDATE jobs SET reported_at = ? WHERE id = ?", (time.time(), job_id))

    async def reopen(self, job_id: str, *, from_state: JobState, params: JobParams) -> bool:
        """Move a waiting job back to QUEUED with new params, to be run and reported again.

        Atomic: False when the job was not in ``from_state`` (someone else got there first).
        """
        async with self.store.transaction():
            cur = await self.store.conn.execute(
                "UPDATE jobs SET state = ?, params = ?, reported_at = NULL, updated_at = ? WHERE id = ? AND state = ?",
                (JobState.QUEUED.value, params.model_dump_json(), time.time(), job_id, from_state.value),
            )
            return cur.rowcount == 1

    async def park(self, job_id: str, *, detail: str) -> int:
        """Put a job's in-flight items back to PENDING so the next start re-applies them.

        Used at shutdown for idempotent verbs; returns how many items were parked.
        """
        async with self.store.transaction():
            cur = await self.store.conn.execute(
                "UPDATE job_items SET state = ?, detail = ?, updated_at = ? WHERE job_id = ? AND state = ?",
                (ItemStatus.PENDING.value, detail, time.time(), job_id, ItemStatus.RUNNING.value),
            )
            return cur.rowcount

    async def queue_stats(self) -> tuple[int, float | None]:
        """(unfinished jobs, created_at of the oldest) for metrics and readiness."""
        async with self.store.conn.execute(
            "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE state IN (?, ?)",
            (JobState.QUEUED.value, JobState.RUNNING.value),
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), row[1]

    # ---- items ---------------------------------------------------------------------------

    async def items(self, job_id: str) -> list[JobItem]:
        async with self.store.conn.execute("SELECT * FROM job_items WHERE job_id = ? ORDER BY seq", (job_id,)) as cur:
            rows = await cur.fetchall()
        return [
            JobItem(
                job_id=r["job_id"],
                seq=r["seq"],
                target=_target_from_row(r),
                state=ItemStatus(r["state"]),
                detail=r["detail"],
                status=r["status"],
                before=r["before"],
                after=r["after"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]

    async def mark_items(self, job_id: str, seqs: Sequence[int], state: ItemStatus, detail: str = "") -> None:
        async with self.store.transaction():
            await self.store.conn.executemany(
                "UPDATE job_items SET state = ?, detail = ?, updated_at = ? WHERE job_id = ? AND seq = ?",
                [(state.value, detail, time.time(), job_id, s) for s in seqs],
            )

    async def record_results(
        self, job: Job, results: Sequence[tuple[int, ItemResult]], *, verb: str | None = None
    ) -> None:
        """Store each item's outcome and append it to the ledger, in one transaction."""
        now = time.time()
        async with self.store.transaction():
            await self.store.conn.executemany(
                "UPDATE job_items SET state = ?, detail = ?, status = ?, before = ?, after = ?, updated_at = ?"
                " WHERE job_id = ? AND seq = ?",
                [(r.outcome.value, r.detail, r.status, r.before, r.after, now, job.id, seq) for seq, r in results],
            )
            await self.store.conn.executemany(
                "INSERT INTO ledger (at, job_id, team_id, actor_id, verb, platform, target, before, after,"
                " outcome, detail, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        now,
                        job.id,
                        job.team_id,
                        job.actor_id,
                        verb or job.verb,
                        r.target.platform.value,
                        r.target.key,
                        r.before,
                        r.after,
                        r.outcome.value,
                        r.detail,
                        r.status,
                    )
                    for _, r in results
                ],
            )

    # ---- ledger ----------------------------------------------------------------------------

    async def record(
        self,
        *,
        team_id: str,
        actor_id: str,
        verb: str,
        outcome: str,
        detail: str = "",
        target: Target | None = None,
        job_id: str | None = None,
    ) -> None:
        """Append one ledger line that is not an item result (refusals, cancellations …)."""
        async with self.store.transaction():
            await self.store.conn.execute(
                "INSERT INTO ledger (at, job_id, team_id, actor_id, verb, platform, target, outcome, detail)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    time.time(),
                    job_id,
                    team_id,
                    actor_id,
                    verb,
                    target.platform.value if target else None,
                    target.key if target else None,
                    outcome,
                    detail,
                ),
            )

    async def history(self, target: Target, *, limit: int = 50) -> list[LedgerEntry]:
        """An item's trail, newest first."""
        async with self.store.conn.execute(
            "SELECT * FROM ledger WHERE target = ? ORDER BY at DESC, id DESC LIMIT ?", (target.key, limit)
        ) as cur:
            rows = await cur.fetchall()
        return [LedgerEntry.model_validate(dict(r)) for r in rows]

    async def ledger_since(self, since: float) -> list[LedgerEntry]:
        async with self.store.conn.execute("SELECT * FROM ledger WHERE at >= ? ORDER BY at, id", (since,)) as cur:
            rows = await cur.fetchall()
        return [LedgerEntry.model_validate(dict(r)) for r in rows]

    async def recent_change(
        self, target: Target, *, verb: str, assignee: str | None, within: float
    ) -> LedgerEntry | None:
        """The latest successful change of ``target`` if it was this ``verb`` (to ``assignee``) within ``within`` s.

        Only the newest assign/unassign/handoff/resolve counts, so "assign, unassign, assign" is
        not mistaken for a repeat of the first assign.
        """
        latest = await self.latest_change(target, within=within)
        if latest is None or latest.entry.verb != verb:
            return None
        if assignee is not None and latest.assignee != assignee:
            return None
        return latest.entry

    async def latest_change(self, target: Target, *, within: float | None = None) -> RecentChange | None:
        """The newest successful assign/unassign/handoff/resolve of ``target`` (within ``within`` s)."""
        async with self.store.conn.execute(
            "SELECT l.*, json_extract(j.params, '$.assignee') AS job_assignee FROM ledger l"
            " LEFT JOIN jobs j ON j.id = l.job_id"
            " WHERE l.target = ? AND l.outcome IN ('done','warning')"
            " AND l.verb IN ('assign','unassign','handoff','resolve')"
            " ORDER BY l.at DESC, l.id DESC LIMIT 1",
            (target.key,),
        ) as cur:
            row = await cur.fetchone()
        if row is None or (within is not None and row["at"] < time.time() - within):
            return None
        data = dict(row)
        job_assignee = data.pop("job_assignee", None)
        return RecentChange(entry=LedgerEntry.model_validate(data), assignee=job_assignee)

    async def last_known(self, target: Target) -> LedgerEntry | None:
        """The newest ledger line that tells who the bot left the item with (``after``; None: nobody).

        Includes "already in that state" skips, which also read the platform's value.
        """
        async with self.store.conn.execute(
            "SELECT * FROM ledger WHERE target = ? AND ("
            " (outcome IN ('done','warning') AND verb IN ('assign','unassign','handoff'))"
            " OR (outcome = 'skipped' AND verb IN ('assign','handoff') AND after IS NOT NULL))"
            " ORDER BY at DESC, id DESC LIMIT 1",
            (target.key,),
        ) as cur:
            row = await cur.fetchone()
        return LedgerEntry.model_validate(dict(row)) if row else None

    async def held_by(self, *, platform: Platform, identity: str) -> list[Target]:
        """Items whose latest assignment change by the bot left them with ``identity`` (and not resolved since)."""
        async with self.store.conn.execute(
            "SELECT l.target FROM ledger l WHERE l.platform = ? AND l.after = ?"
            " AND l.verb IN ('assign', 'handoff') AND l.outcome IN ('done', 'warning')"
            " AND l.id = (SELECT MAX(l2.id) FROM ledger l2 WHERE l2.target = l.target"
            "   AND l2.verb IN ('assign', 'handoff', 'unassign', 'resolve')"
            "   AND l2.outcome IN ('done', 'warning'))",
            (platform.value, identity),
        ) as cur:
            rows = await cur.fetchall()
        return [Target.from_key(r["target"]) for r in rows]

    async def in_flight(self, target: Target, *, verb: str) -> tuple[Job, JobItem] | None:
        """A queued or running job that will apply ``verb`` to ``target``."""
        async with self.store.conn.execute(
            "SELECT j.id AS jid, i.seq AS seq FROM job_items i JOIN jobs j ON j.id = i.job_id"
            " WHERE i.target = ? AND i.state IN ('pending','running') AND j.verb = ?"
            " AND j.state IN ('queued','running') ORDER BY j.created_at LIMIT 1",
            (target.key, verb),
        ) as cur:
            row = await cur.fetchone()
        if not row:
            return None
        job = await self.get(row["jid"])
        if job is None:
            return None
        items = [i for i in await self.items(job.id) if i.seq == row["seq"]]
        return (job, items[0]) if items else None
