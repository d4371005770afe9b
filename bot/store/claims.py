"""Job claims: which worker runs a job, held by a lease the worker keeps renewing.

The web process stores a job and acknowledges; a worker (in the same process or in
another one) finds it in the store and claims it with one conditional ``UPDATE``:
the claim succeeds only when nobody holds a live lease, so two workers never run
one job. A worker that stops releases its claims; one that dies leaves them to
expire (``lease_until``) or, on the same host, to be released at once by the next
worker to start, which sees that the owning process is gone.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

from bot.models import JobState
from bot.store.db import Store

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

    async def claim(self, job_id: str) -> bool:
        """Take ``job_id`` unless another live worker holds it; False when someone else does."""
        now = time.time()
        async with self.store.transaction():
            cur = await self.store.conn.execute(
                "UPDATE jobs SET claimed_by = ?, lease_until = ? WHERE id = ?"
                " AND (claimed_by IS NULL OR claimed_by = ? OR lease_until < ?)",
                (self.owner, now + self.lease_s, job_id, self.owner, now),
            )
            return cur.rowcount == 1

    async def release(self, job_id: str) -> None:
        """Give up the claim on ``job_id`` (it is finished, or parked for the next start)."""
        async with self.store.transaction():
            await self.store.conn.execute(
                "UPDATE jobs SET claimed_by = NULL, lease_until = NULL WHERE id = ? AND claimed_by = ?",
                (job_id, self.owner),
            )

    async def release_all(self) -> None:
        """Give up every claim of this worker (it is stopping; parked jobs resume elsewhere)."""
        async with self.store.transaction():
            await self.store.conn.execute(
                "UPDATE jobs SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = ?", (self.owner,)
            )

    async def renew(self) -> int:
        """Extend the lease of every job this worker holds; returns how many."""
        async with self.store.transaction():
            cur = await self.store.conn.execute(
                "UPDATE jobs SET lease_until = ? WHERE claimed_by = ?", (time.time() + self.lease_s, self.owner)
            )
            return cur.rowcount

    async def claimable(self, limit: int) -> list[str]:
        """Queued or running jobs nobody holds a live lease on, oldest first."""
        async with self.store.conn.execute(
            "SELECT id FROM jobs WHERE state IN (?, ?) AND (claimed_by IS NULL OR lease_until < ?)"
            " ORDER BY created_at LIMIT ?",
            (JobState.QUEUED.value, JobState.RUNNING.value, time.time(), limit),
        ) as cur:
            return [str(r[0]) for r in await cur.fetchall()]

    async def free_orphans(self) -> int:
        """Release claims whose owner process on this host is gone, so a restart resumes at once."""
        async with self.store.conn.execute(
            "SELECT DISTINCT claimed_by FROM jobs WHERE claimed_by IS NOT NULL AND claimed_by != ?", (self.owner,)
        ) as cur:
            owners = [str(r[0]) for r in await cur.fetchall()]
        gone = [o for o in owners if owner_gone(o)]
        if not gone:
            return 0
        marks = ",".join("?" * len(gone))
        async with self.store.transaction():
            cur = await self.store.conn.execute(
                f"UPDATE jobs SET claimed_by = NULL, lease_until = NULL WHERE claimed_by IN ({marks})", gone
            )
            return cur.rowcount

    def retire(self) -> None:
        """This owner's pool has stopped: an in-process successor may free what it left."""
        _LIVE_OWNERS.discard(self.owner)
