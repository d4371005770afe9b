"""The on-call watcher's state: each schedule's baseline and the shift-change handoffs.

``claim`` is the at-most-once door: an ``INSERT OR IGNORE`` on the unique key (schedule,
shift start, from, to) inside one ``BEGIN IMMEDIATE`` transaction, so of two replicas (or a
bot and its restarted self) seeing the same change only one gets the row and acts on it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel

from bot.store.db import Store

PENDING, APPLIED, CANCELLED, UNMATCHED, ENDED = "pending", "applied", "cancelled", "unmatched", "ended"


class OnCallHandoff(BaseModel):
    """One shift-change handoff row."""

    id: int
    schedule: str
    shift_start: str
    from_email: str
    to_email: str
    state: str
    job_id: str | None
    due_at: float | None
    detail: str


def _row(row: Any) -> OnCallHandoff:
    return OnCallHandoff(**{k: row[k] for k in OnCallHandoff.model_fields})


class OnCallStore:
    """Baselines and handoff rows in the shared store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def baseline(self, schedule: str) -> list[str] | None:
        """The responders' emails last seen on ``schedule``, or None before its first poll."""
        sql = "SELECT responders FROM oncall_baseline WHERE schedule = ?"
        async with self.store.conn.execute(sql, (schedule,)) as cur:
            row = await cur.fetchone()
        return list(json.loads(row["responders"])) if row else None

    async def set_baseline(self, schedule: str, emails: list[str]) -> None:
        async with self.store.transaction() as conn:
            await conn.execute(
                "INSERT INTO oncall_baseline (schedule, responders, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(schedule) DO UPDATE SET responders = excluded.responders, "
                "updated_at = excluded.updated_at",
                (schedule, json.dumps(sorted(emails)), time.time()),
            )

    async def claim(
        self,
        *,
        schedule: str,
        shift_start: str,
        from_email: str,
        to_email: str,
        state: str = PENDING,
        due_at: float | None = None,
        detail: str = "",
    ) -> OnCallHandoff | None:
        """Create the row for this handoff, or None when one exists already (this change was handled)."""
        now = time.time()
        async with self.store.transaction() as conn:
            cur = await conn.execute(
                "INSERT OR IGNORE INTO oncall_handoffs (schedule, shift_start, from_email, to_email, state, due_at, "
                "detail, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (schedule, shift_start, from_email, to_email, state, due_at, detail, now, now),
            )
            if cur.rowcount != 1:
                return None
            row_id = cur.lastrowid
        return await self.get(int(row_id or 0))

    async def get(self, row_id: int) -> OnCallHandoff | None:
        async with self.store.conn.execute("SELECT * FROM oncall_handoffs WHERE id = ?", (row_id,)) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def update(
        self, row_id: int, *, state: str | None = None, job_id: str | None = None, detail: str | None = None
    ) -> None:
        """Set the row's state, job and detail (those given)."""
        async with self.store.transaction() as conn:
            await conn.execute(
                "UPDATE oncall_handoffs SET state = COALESCE(?, state), job_id = COALESCE(?, job_id), "
                "detail = COALESCE(?, detail), updated_at = ? WHERE id = ?",
                (state, job_id, detail, time.time(), row_id),
            )

    async def pending(self, schedule: str | None = None) -> list[OnCallHandoff]:
        """Handoffs not yet applied, cancelled or ended (of one schedule, or all), oldest first."""
        sql = "SELECT * FROM oncall_handoffs WHERE state = ?"
        args: tuple[Any, ...] = (PENDING,)
        if schedule is not None:
            sql += " AND schedule = ?"
            args += (schedule,)
        async with self.store.conn.execute(sql + " ORDER BY id", args) as cur:
            return [_row(r) for r in await cur.fetchall()]
