"""Job claims: which worker runs a job, held by a lease the worker keeps renewing.

The web process stores a job and acknowledges; a worker (in the same process, in
another one, or on another replica) finds it in the store and claims it: the
poller marks the oldest unclaimed jobs its own in one ``UPDATE`` whose subquery picks
them with ``SELECT … FOR UPDATE SKIP LOCKED`` (SQLite: under its write lock), and a
job handed over directly is claimed with one conditional ``UPDATE``. Either way a
claim succeeds only when nobody holds a live lease, so two workers never run one
job. A worker that stops releases its claims; one that dies (SIGKILL, host lost)
leaves them to expire (``lease_until``) or, on the same host, to be released at once
by the next worker to start, which sees that the owning process is gone.

Reporting is claimed the same way (``claim_report``): of two workers that both
finished a job (a lease that lapsed under a stalled worker), only one posts its
report.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import sqlalchemy as sa

from bot.models import JobState
from bot.store.db import Store
from bot.store.tables import jobs

# Worker owners alive in this process (an in-process restart must not free a live one's jobs).
_LIVE_OWNERS: set[str] = set()


def new_owner() -> str:
    """A unique claim owner for one worker pool: ``host:pid:nonce``."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    _LIVE_OWNERS.add(owner)
    return owner


def owner_gone(owner: str) -> bool:
    """True when ``owner`` was a worker on this host whose process (or pool) no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another host: only its lease expiry can free the job
    pid = int(pid_text)
    if pid == os.getpid():
        return owner not in _LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class JobClaims:
    """Claim, renew and release jobs in the shared store."""

    def __init__(self, store: Store, *, owner: str, lease_s: float) -> None:
        self.store = store
        self.owner = owner
        self.lease_s = lease_s

    def _free(self, now: float) -> sa.ColumnElement[bool]:
        return sa.or_(jobs.c.claimed_by.is_(None), jobs.c.claimed_by == self.owner, jobs.c.lease_until < now)

    async def _update(self, stmt: sa.Update) -> int:
        return (await self.store.write_one(stmt)).rowcount

    async def claim(self, job_id: str) -> bool:
        """Take ``job_id`` unless another live worker holds it; False when someone else does."""
        now = time.time()
        stmt = (
            sa.update(jobs)
            .where(jobs.c.id == job_id, self._free(now))
            .values(claimed_by=self.owner, lease_until=now + self.lease_s)
        )
        return await self._update(stmt) == 1

    async def claim_next(self, limit: int) -> list[str]:
        """Claim up to ``limit`` queued or running jobs nobody holds a live lease on, oldest first.

        Rows another replica is claiming at this moment are skipped, not waited for."""
        if limit <= 0:
            return []
        now = time.time()
        claimable = sa.select(jobs.c.id).where(
            jobs.c.state.in_((JobState.QUEUED.value, JobState.RUNNING.value)), self._free(now)
        )
        # Most polls find nothing: a read says so without a write transaction (on SQLite the
        # file's write lock, which the acknowledgement path would then have to wait for).
        async with self.store.read() as conn:
            if (await conn.execute(claimable.limit(1))).first() is None:
                return []
        # One statement (SQLite: the write lock for that statement alone; PostgreSQL: the rows
        # picked are locked, and rows another replica is claiming skipped).
        pick = claimable.order_by(jobs.c.created_at).limit(limit).with_for_update(skip_locked=True)
        claim = (
            sa.update(jobs)
            .where(jobs.c.id.in_(pick.scalar_subquery()), self._free(now))
            .values(claimed_by=self.owner, lease_until=now + self.lease_s)
            .returning(jobs.c.id, jobs.c.created_at)
        )
        rows = (await self.store.write_one(claim)).rows
        return [str(row[0]) for row in sorted(rows, key=lambda row: float(row[1]))]

    async def claim_report(self, job_id: str) -> bool:
        """Take the right to post ``job_id``'s report: False when it is reported or another worker is posting it."""
        now = time.time()
        stmt = (
            sa.update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.reported_at.is_(None),
                sa.or_(jobs.c.reporting_by.is_(None), jobs.c.reporting_by == self.owner, jobs.c.reporting_until < now),
            )
            .values(reporting_by=self.owner, reporting_until=now + self.lease_s)
        )
        return await self._update(stmt) == 1

    async def release(self, job_id: str) -> None:
        """Give up the claim on ``job_id`` (it is finished, or parked for the next start)."""
        await self._update(
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.claimed_by == self.owner)
            .values(claimed_by=None, lease_until=None)
        )

    async def release_all(self) -> None:
        """Give up every claim of this worker (it is stopping; parked jobs resume elsewhere)."""
        await self._update(
            sa.update(jobs).where(jobs.c.claimed_by == self.owner).values(claimed_by=None, lease_until=None)
        )

    async def renew(self) -> int:
        """Extend the lease of every job this worker holds; returns how many."""
        until = time.time() + self.lease_s
        async with self.store.transaction() as conn:
            held = await conn.execute(sa.update(jobs).where(jobs.c.claimed_by == self.owner).values(lease_until=until))
            await conn.execute(sa.update(jobs).where(jobs.c.reporting_by == self.owner).values(reporting_until=until))
            return held.rowcount

    async def claimable(self, limit: int) -> list[str]:
        """Queued or running jobs nobody holds a live lease on, oldest first (without claiming them)."""
        query = (
            sa.select(jobs.c.id)
            .where(
                jobs.c.state.in_((JobState.QUEUED.value, JobState.RUNNING.value)),
                sa.or_(jobs.c.claimed_by.is_(None), jobs.c.lease_until < time.time()),
            )
            .order_by(jobs.c.created_at)
            .limit(limit)
        )
        async with self.store.read() as conn:
            return [str(i) for i in (await conn.execute(query)).scalars().all()]

    async def free_orphans(self) -> int:
        """Release claims whose owner process on this host is gone, so a restart resumes at once."""
        query = (
            sa.select(jobs.c.claimed_by)
            .distinct()
            .where(jobs.c.claimed_by.is_not(None), jobs.c.claimed_by != self.owner)
        )
        async with self.store.read() as conn:
            owners = [str(o) for o in (await conn.execute(query)).scalars().all()]
        gone = [o for o in owners if owner_gone(o)]
        if not gone:
            return 0
        return await self._update(
            sa.update(jobs).where(jobs.c.claimed_by.in_(gone)).values(claimed_by=None, lease_until=None)
        )

    def retire(self) -> None:
        """This owner's pool has stopped: an in-process successor may free what it left."""
        _LIVE_OWNERS.discard(self.owner)
