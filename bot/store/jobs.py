"""Durable jobs and their items.

A job is written, with all its items, before Slack is acknowledged; workers
then move each item through explicit states. Every item ends in a terminal
state, and a job is finished only once its outcome was reported in Slack.

``submit`` is the acknowledgement path's one write: the redelivery check, the
"same change in flight or just made" check and the insert run in one
``BEGIN IMMEDIATE`` transaction, so two replicas on one database cannot both
accept the same change. Job states move only through ``move``, checked against
``JobState.next_states`` in the database itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from bot.models import (
    IDEMPOTENT_VERBS,
    ItemResult,
    ItemStatus,
    Job,
    JobItem,
    JobParams,
    JobState,
    Platform,
    Target,
    Verb,
)
from bot.store.ledger import Ledger, LedgerEntry, RecentChange, append_results

# The job models moved to bot.models; these names stay importable from here for old callers.
__all__ = [
    "DUPLICATE_WINDOW_S",
    "DuplicateDelivery",
    "ItemStatus",
    "Job",
    "JobItem",
    "JobParams",
    "JobState",
    "JobStore",
    "LedgerEntry",
    "RecentChange",
    "SameChange",
]

# A second identical request inside this window is answered "already …" instead of run.
DUPLICATE_WINDOW_S = 60.0


class DuplicateDelivery(BaseModel):
    """Slack delivered the same interaction again (a retry): the first delivery's job stands."""

    interaction_key: str | None = None


class SameChange(BaseModel):
    """The same change is queued, running, or was just made; ``message`` says by whom and when."""

    message: str


def _target_from_row(row: Any) -> Target:
    return Target(platform=Platform(row["platform"]), id=row["item_id"], space=row["space"])


class JobStore(Ledger):
    """Jobs and items in the shared store, with the ledger (``Ledger``) they append to."""

    # ---- accepting work ------------------------------------------------------------------

    async def submit(
        self,
        *,
        verb: Verb,
        team_id: str,
        actor_id: str,
        targets: Sequence[Target],
        params: JobParams,
        source: str,
        from_card: bool = False,
        channel_id: str | None = None,
        card_ts: str | None = None,
        thread_ts: str | None = None,
        response_url: str | None = None,
        interaction_key: str | None = None,
        state: JobState = JobState.QUEUED,
    ) -> Job | DuplicateDelivery | SameChange:
        """Store a new job unless it repeats one: checks and insert are one transaction.

        ``from_card``: a card button, also refused when someone else made the same change
        (to someone else) moments ago, so the second click is told who got there first.
        """
        now = time.time()
        job_id = uuid.uuid4().hex[:12]
        async with self.store.transaction(urgent=True):  # Slack is waiting for this one
            if interaction_key and await self.by_interaction_key(interaction_key) is not None:
                return DuplicateDelivery(interaction_key=interaction_key)
            same = await self._same_change(verb, targets, params, from_card=from_card)
            if same is not None:
                return SameChange(message=same)
            inserted = await self._insert(
                job_id,
                now,
                verb=verb,
                team_id=team_id,
                actor_id=actor_id,
                targets=targets,
                params=params,
                source=source,
                channel_id=channel_id,
                card_ts=card_ts,
                thread_ts=thread_ts,
                response_url=response_url,
                interaction_key=interaction_key,
                state=state,
            )
            if not inserted:
                return DuplicateDelivery(interaction_key=interaction_key)
        job = await self.get(job_id)
        assert job is not None
        return job

    async def _same_change(
        self, verb: Verb, targets: Sequence[Target], params: JobParams, *, from_card: bool
    ) -> str | None:
        """Why this exact change must not be stored again (in flight, or just made), or None.

        Only single-item requests of idempotent verbs are checked; the rest rely on the
        unique interaction key.
        """
        if verb not in IDEMPOTENT_VERBS or len(targets) != 1:
            return None
        target = targets[0]
        wanted = params.assignee if verb is Verb.ASSIGN else None
        flight = await self.in_flight(target, verb=verb)
        if flight is not None:
            job, _ = flight
            if job.params.assignee == wanted or verb is not Verb.ASSIGN or from_card:
                ago = time.time() - job.created_at
                return (
                    f"{target.key} is already being handled: <@{job.actor_id}> asked to "
                    f"{job.verb.phrase(job.params.assignee)} {ago:.0f} s ago"
                )
        latest = await self.latest_change(target, within=DUPLICATE_WINDOW_S)
        if latest is None or latest.entry.verb != verb.value:
            return None
        if wanted is not None and latest.assignee != wanted and not from_card:
            return None
        ago = time.time() - latest.entry.at
        to = f" to <@{latest.assignee}>" if verb is Verb.ASSIGN and latest.assignee else ""
        return f"{target.key} was already {verb.past}{to} by <@{latest.entry.actor_id}> {ago:.0f} s ago"

    async def _insert(
        self,
        job_id: str,
        now: float,
        *,
        verb: Verb,
        team_id: str,
        actor_id: str,
        targets: Sequence[Target],
        params: JobParams,
        source: str,
        channel_id: str | None,
        card_ts: str | None,
        thread_ts: str | None,
        response_url: str | None,
        interaction_key: str | None,
        state: JobState,
    ) -> bool:
        """Insert a job row and its items (inside the caller's transaction); False on a seen key."""
        cur = await self.store.conn.execute(
            "INSERT OR IGNORE INTO jobs (id, verb, state, team_id, actor_id, channel_id, card_ts,"
            " thread_ts, response_url, source, interaction_key, params, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                job_id,
                verb.value,
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
            return False
        await self._insert_items(job_id, targets, start=0, now=now)
        return True

    async def _insert_items(self, job_id: str, targets: Iterable[Target], *, start: int, now: float) -> None:
        await self.store.conn.executemany(
            "INSERT INTO job_items (job_id, seq, platform, target, space, item_id, state, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            [
                (job_id, start + n, t.platform.value, t.key, t.space, t.id, ItemStatus.PENDING.value, now)
                for n, t in enumerate(targets)
            ],
        )

    # ---- reading jobs --------------------------------------------------------------------

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

    async def in_flight(self, target: Target, *, verb: Verb) -> tuple[Job, JobItem] | None:
        """A queued or running job that will apply ``verb`` to ``target``."""
        async with self.store.conn.execute(
            "SELECT j.id AS jid, i.seq AS seq FROM job_items i JOIN jobs j ON j.id = i.job_id"
            " WHERE i.target = ? AND i.state IN ('pending','running') AND j.verb = ?"
            " AND j.state IN ('queued','running') ORDER BY j.created_at LIMIT 1",
            (target.key, verb.value),
        ) as cur:
            row = await cur.fetchone()
        if not row:
            return None
        job = await self.get(row["jid"])
        if job is None:
            return None
        items = [i for i in await self.items(job.id) if i.seq == row["seq"]]
        return (job, items[0]) if items else None

    async def queue_stats(self) -> tuple[int, float | None]:
        """(unfinished jobs, created_at of the oldest) for metrics and readiness."""
        async with self.store.conn.execute(
            "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE state IN (?, ?)",
            (JobState.QUEUED.value, JobState.RUNNING.value),
        ) as cur:
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), row[1]

    # ---- changing jobs -------------------------------------------------------------------

    async def move(
        self,
        job_id: str,
        to: JobState,
        *,
        params: JobParams | None = None,
        items: Sequence[Target] | None = None,
        summary: str | None = None,
    ) -> bool:
        """Move a job to ``to`` from any state allowed to reach it (``JobState.next_states``).

        One transaction, checked in the database: False when the job was in no such state
        (another worker, replica or click got there first). ``params`` and ``items`` replace
        the job's own in the same step; moving back to QUEUED makes it reportable again.
        """
        sources = sorted(s.value for s in to.sources)
        marks = ",".join("?" * len(sources))
        now = time.time()
        async with self.store.transaction():
            cur = await self.store.conn.execute(
                "UPDATE jobs SET state = ?, params = COALESCE(?, params), summary = COALESCE(?, summary),"
                " reported_at = CASE WHEN ? THEN NULL ELSE reported_at END, updated_at = ?"
                f" WHERE id = ? AND state IN ({marks})",
                (
                    to.value,
                    params.model_dump_json() if params is not None else None,
                    summary,
                    to is JobState.QUEUED,
                    now,
                    job_id,
                    *sources,
                ),
            )
            if cur.rowcount != 1:
                return False
            if items is not None:
                await self.store.conn.execute("DELETE FROM job_items WHERE job_id = ?", (job_id,))
                await self._insert_items(job_id, items, start=0, now=now)
            return True

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
            await append_results(
                self.store.conn,
                at=now,
                job_id=job.id,
                team_id=job.team_id,
                actor_id=job.actor_id,
                verb=verb or job.verb.value,
                results=[r for _, r in results],
            )
