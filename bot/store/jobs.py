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

from bot.models import (
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
from bot.store.accept import (
    DUPLICATE_WINDOW_S,
    INSERT_ITEMS,
    DuplicateDelivery,
    SameChange,
    Submission,
    accept,
    item_rows,
    job_from_row,
)
from bot.store.ledger import Ledger, append_results

__all__ = ["DUPLICATE_WINDOW_S", "DuplicateDelivery", "JobStore", "SameChange"]


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
        """Store a new job unless it repeats one: checks and insert are one transaction (``accept``).

        ``from_card``: a card button, also refused when someone else made the same change
        (to someone else) moments ago, so the second click is told who got there first.
        """
        sub = Submission(
            verb=verb,
            team_id=team_id,
            actor_id=actor_id,
            targets=list(targets),
            params=params,
            source=source,
            from_card=from_card,
            channel_id=channel_id,
            card_ts=card_ts,
            thread_ts=thread_ts,
            response_url=response_url,
            interaction_key=interaction_key,
            state=state,
        )
        job_id = uuid.uuid4().hex[:12]
        # Slack is waiting for this one: one hop to the database thread, ahead of the workers.
        return await self.store.write_now(lambda conn: accept(conn, job_id, sub))

    async def _insert_items(self, job_id: str, targets: Iterable[Target], *, start: int, now: float) -> None:
        await self.store.conn.executemany(INSERT_ITEMS, item_rows(job_id, targets, start=start, now=now))

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
        return job_from_row(row)

    async def unfinished(self) -> list[Job]:
        """Jobs that still have work or reporting to do, oldest first."""
        async with self.store.conn.execute(
            "SELECT * FROM jobs WHERE state IN (?, ?) OR (reported_at IS NULL AND state != ?) ORDER BY created_at",
            (JobState.QUEUED.value, JobState.RUNNING.value, JobState.CANCELLED.value),
        ) as cur:
            rows = await cur.fetchall()
        return [self._job(r) for r in rows]

    async def undo_offers(self, *, within_s: float = 86_400.0, limit: int = 500) -> list[Job]:
        """Recent writes that may still show an Undo button (their params hold an offer)."""
        async with self.store.conn.execute(
            "SELECT * FROM jobs WHERE verb IN ('assign', 'unassign', 'resolve', 'severity') AND updated_at >= ?"
            " AND params LIKE ? ORDER BY updated_at LIMIT ?",
            (time.time() - within_s, '%"undo":{%"closed":false%', limit),
        ) as cur:
            rows = await cur.fetchall()
        return [self._job(r) for r in rows]

    async def awaiting_confirm(self, limit: int = 50) -> list[Job]:
        """Handoff previews waiting for Confirm or Cancel, newest first."""
        async with self.store.conn.execute(
            "SELECT * FROM jobs WHERE state = ? ORDER BY created_at DESC LIMIT ?",
            (JobState.AWAITING_CONFIRM.value, limit),
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
