"""Durable jobs and their items.

A job is written, with all its items, before Slack is acknowledged; workers
then move each item through explicit states. Every item ends in a terminal
state, and a job is finished only once its outcome was reported in Slack.

``submit`` is the acknowledgement path's one write: the redelivery check, the
"same change in flight or just made" check and the insert run in one
transaction under the item's lock (``bot.store.accept``), so two replicas on one
database cannot both accept the same change. Job states move only through
``move``, one conditional ``UPDATE`` checked against ``JobState.next_states`` in
the database itself.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

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
    DuplicateDelivery,
    SameChange,
    Submission,
    item_rows,
    job_from_row,
    store_job,
)
from bot.store.ledger import Ledger, append_results
from bot.store.statements import IN_FLIGHT
from bot.store.tables import job_items, jobs

ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)
_OPEN = [ItemStatus.PENDING.value, ItemStatus.RUNNING.value]  # items not yet terminal

__all__ = ["DUPLICATE_WINDOW_S", "DuplicateDelivery", "JobStore", "SameChange"]


def _target_from_row(row: Mapping[Any, Any]) -> Target:
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
        job_id = secrets.token_hex(6)
        # Slack is waiting for this one: ahead of this process's queued writers.
        return await store_job(self.store, job_id, sub)

    @staticmethod
    async def _insert_items(
        conn: AsyncConnection, job_id: str, targets: Iterable[Target], *, start: int, now: float
    ) -> None:
        rows = item_rows(job_id, targets, start=start, now=now)
        if rows:
            await conn.execute(sa.insert(job_items), rows)

    # ---- reading jobs --------------------------------------------------------------------

    async def _jobs(self, query: sa.Select[Any]) -> list[Job]:
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [job_from_row(r) for r in rows]

    async def _job_where(self, condition: sa.ColumnElement[bool]) -> Job | None:
        found = await self._jobs(sa.select(jobs).where(condition))
        return found[0] if found else None

    async def by_interaction_key(self, key: str) -> Job | None:
        """The job created for one Slack interaction (trigger id, action ts …), if any."""
        return await self._job_where(jobs.c.interaction_key == key)

    async def get(self, job_id: str) -> Job | None:
        return await self._job_where(jobs.c.id == job_id)

    @staticmethod
    def _job(row: Mapping[Any, Any]) -> Job:
        return job_from_row(row)

    async def unfinished(self) -> list[Job]:
        """Jobs that still have work or reporting to do, oldest first."""
        return await self._jobs(
            sa.select(jobs)
            .where(
                sa.or_(
                    jobs.c.state.in_(ACTIVE),
                    sa.and_(jobs.c.reported_at.is_(None), jobs.c.state != JobState.CANCELLED.value),
                )
            )
            .order_by(jobs.c.created_at)
        )

    async def undo_offers(self, *, within_s: float = 86_400.0, limit: int = 500) -> list[Job]:
        """Recent writes that may still show an Undo button (their params hold an offer)."""
        return await self._jobs(
            sa.select(jobs)
            .where(
                jobs.c.verb.in_(("assign", "unassign", "resolve", "severity")),
                jobs.c.updated_at >= time.time() - within_s,
                jobs.c.params.like('%"undo":{%"closed":false%'),
            )
            .order_by(jobs.c.updated_at)
            .limit(limit)
        )

    async def awaiting_confirm(self, limit: int = 50) -> list[Job]:
        """Handoff previews waiting for Confirm or Cancel, newest first."""
        return await self._jobs(
            sa.select(jobs)
            .where(jobs.c.state == JobState.AWAITING_CONFIRM.value)
            .order_by(jobs.c.created_at.desc())
            .limit(limit)
        )

    async def in_flight(self, target: Target, *, verb: Verb) -> tuple[Job, JobItem] | None:
        """A queued or running job that will apply ``verb`` to ``target``."""
        async with self.store.read() as conn:
            row = (await conn.execute(IN_FLIGHT, {"target": target.key, "verb": verb.value})).mappings().first()
        if not row:
            return None
        job = job_from_row(row)
        items = [i for i in await self.items(job.id) if i.seq == row["item_seq"]]
        return (job, items[0]) if items else None

    async def queue_stats(self) -> tuple[int, float | None]:
        """(unfinished jobs, created_at of the oldest) for metrics and readiness."""
        query = sa.select(sa.func.count(), sa.func.min(jobs.c.created_at)).where(jobs.c.state.in_(ACTIVE))
        async with self.store.read() as conn:
            row = (await conn.execute(query)).one()
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
        now = time.time()
        values: dict[str, Any] = {"state": to.value, "updated_at": now}
        if params is not None:
            values["params"] = params.model_dump_json()
        if summary is not None:
            values["summary"] = summary
        if to is JobState.QUEUED:
            values |= {"reported_at": None, "reporting_by": None, "reporting_until": None}
        update = sa.update(jobs).where(jobs.c.id == job_id, jobs.c.state.in_(sources)).values(values)
        if items is None:
            return (await self.store.write_one(update)).rowcount == 1
        async with self.store.transaction() as conn:
            result = await conn.execute(update)
            if result.rowcount != 1:
                return False
            await conn.execute(sa.delete(job_items).where(job_items.c.job_id == job_id))
            await self._insert_items(conn, job_id, items, start=0, now=now)
            return True

    async def _update_job(self, job_id: str, **values: Any) -> None:
        await self.store.write_one(sa.update(jobs).where(jobs.c.id == job_id).values(values))

    async def update_params(self, job_id: str, params: JobParams) -> None:
        await self._update_job(job_id, params=params.model_dump_json(), updated_at=time.time())

    async def set_message(
        self, job_id: str, *, channel_id: str | None, card_ts: str | None, thread_ts: str | None
    ) -> None:
        given = {"channel_id": channel_id, "card_ts": card_ts, "thread_ts": thread_ts}
        await self._update_job(job_id, **{k: v for k, v in given.items() if v is not None}, updated_at=time.time())

    async def mark_reported(self, job_id: str, state: JobState) -> bool:
        """Record that ``job_id``'s report for ``state`` is posted; False when the job has moved on since.

        A handoff preview is reported in AWAITING_CONFIRM, and Confirm may queue the apply phase (which
        clears ``reported_at``) before the preview's poster gets here: that mark must not land on the
        queued job, or its own report would never be posted."""
        update = (
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state == state.value)
            .values(reported_at=time.time(), reporting_by=None, reporting_until=None)
        )
        return (await self.store.write_one(update)).rowcount == 1

    # ---- items ---------------------------------------------------------------------------

    async def items(self, job_id: str) -> list[JobItem]:
        query = sa.select(job_items).where(job_items.c.job_id == job_id).order_by(job_items.c.seq)
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
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

    @staticmethod
    def _item_update() -> sa.Update:
        return sa.update(job_items).where(
            job_items.c.job_id == sa.bindparam("b_job_id"), job_items.c.seq == sa.bindparam("b_seq")
        )

    async def mark_items(self, job_id: str, seqs: Sequence[int], state: ItemStatus, detail: str = "") -> list[int]:
        """Move items to ``state``; the seqs that moved.

        Taking items (``RUNNING``) moves only those still ``PENDING``: of two workers that both
        run one job (a lease that lapsed under a stalled worker), each item is taken by one,
        so none is sent twice. Other moves apply to every item that is not yet terminal."""
        if not seqs:
            return []
        allowed = [ItemStatus.PENDING.value] if state is ItemStatus.RUNNING else _OPEN
        stmt = (
            sa.update(job_items)
            .where(job_items.c.job_id == job_id, job_items.c.seq.in_(list(seqs)), job_items.c.state.in_(allowed))
            .values(state=state.value, detail=detail, updated_at=time.time())
            .returning(job_items.c.seq)
        )
        return sorted(int(row[0]) for row in (await self.store.write_one(stmt)).rows)

    async def park(self, job_id: str, *, detail: str) -> int:
        """Put a job's in-flight items back to PENDING so the next start re-applies them.

        Used at shutdown for idempotent verbs; returns how many items were parked.
        """
        async with self.store.transaction() as conn:
            result = await conn.execute(
                sa.update(job_items)
                .where(job_items.c.job_id == job_id, job_items.c.state == ItemStatus.RUNNING.value)
                .values(state=ItemStatus.PENDING.value, detail=detail, updated_at=time.time())
            )
            return result.rowcount

    async def record_results(
        self, job: Job, results: Sequence[tuple[int, ItemResult]], *, verb: str | None = None
    ) -> None:
        """Store each item's outcome and append it to the ledger, in one transaction.

        An item that is terminal already (another worker recorded it) keeps its outcome and
        gets no second ledger line."""
        if not results:
            return
        now = time.time()
        stmt = self._item_update().values(
            state=sa.bindparam("b_state"),
            detail=sa.bindparam("b_detail"),
            status=sa.bindparam("b_status"),
            before=sa.bindparam("b_before"),
            after=sa.bindparam("b_after"),
            updated_at=now,
        )
        rows = [
            {
                "b_job_id": job.id,
                "b_seq": seq,
                "b_state": r.outcome.value,
                "b_detail": r.detail,
                "b_status": r.status,
                "b_before": r.before,
                "b_after": r.after,
            }
            for seq, r in results
        ]
        async with self.store.transaction() as conn:
            open_now = set(
                (
                    await conn.execute(
                        sa.select(job_items.c.seq)
                        .where(
                            job_items.c.job_id == job.id,
                            job_items.c.seq.in_([seq for seq, _ in results]),
                            job_items.c.state.in_(_OPEN),
                        )
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            fresh = [row for row in rows if row["b_seq"] in open_now]
            if not fresh:
                return
            await conn.execute(stmt, fresh)
            await append_results(
                conn,
                at=now,
                job_id=job.id,
                team_id=job.team_id,
                actor_id=job.actor_id,
                verb=verb or job.verb.value,
                results=[r for seq, r in results if seq in open_now],
            )
