"""The on-call watcher's state: each schedule's baseline and the shift-change handoffs.

``claim`` is the at-most-once door: an ``INSERT … ON CONFLICT DO NOTHING`` on the unique key
(schedule, shift start, from, to), so of two replicas (or a bot and its restarted self)
seeing the same change only one gets the row and acts on it. The database decides, on
SQLite and PostgreSQL alike: the second insert waits for the first and then finds the key
taken.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from bot.store.db import Store, insert
from bot.store.tables import oncall_baseline, oncall_handoffs

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


def _row(row: sa.RowMapping) -> OnCallHandoff:
    return OnCallHandoff(**{k: row[k] for k in OnCallHandoff.model_fields})


class OnCallStore:
    """Baselines and handoff rows in the shared store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def baseline(self, schedule: str) -> list[str] | None:
        """The responders' emails last seen on ``schedule``, or None before its first poll."""
        query = sa.select(oncall_baseline.c.responders).where(oncall_baseline.c.schedule == schedule)
        async with self.store.read() as conn:
            responders = (await conn.execute(query)).scalar_one_or_none()
        return list(json.loads(responders)) if responders is not None else None

    async def set_baseline(self, schedule: str, emails: list[str]) -> None:
        async with self.store.transaction() as conn:
            stmt = insert(conn, oncall_baseline).values(
                schedule=schedule, responders=json.dumps(sorted(emails)), updated_at=time.time()
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[oncall_baseline.c.schedule],
                    set_={"responders": stmt.excluded.responders, "updated_at": stmt.excluded.updated_at},
                )
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
        h = oncall_handoffs.c
        async with self.store.transaction() as conn:
            stmt = (
                insert(conn, oncall_handoffs)
                .values(
                    schedule=schedule,
                    shift_start=shift_start,
                    from_email=from_email,
                    to_email=to_email,
                    state=state,
                    due_at=None if due_at is None else float(due_at),
                    detail=detail,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=[h.schedule, h.shift_start, h.from_email, h.to_email])
                .returning(*oncall_handoffs.c)
            )
            row = (await conn.execute(stmt)).mappings().first()
        return _row(row) if row is not None else None

    async def get(self, row_id: int) -> OnCallHandoff | None:
        query = sa.select(oncall_handoffs).where(oncall_handoffs.c.id == row_id)
        async with self.store.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _row(row) if row else None

    async def update(
        self, row_id: int, *, state: str | None = None, job_id: str | None = None, detail: str | None = None
    ) -> None:
        """Set the row's state, job and detail (those given)."""
        given = {"state": state, "job_id": job_id, "detail": detail}
        values: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
        stmt = sa.update(oncall_handoffs).where(oncall_handoffs.c.id == row_id).values(updated_at=time.time(), **values)
        async with self.store.transaction() as conn:
            await conn.execute(stmt)

    async def pending(self, schedule: str | None = None) -> list[OnCallHandoff]:
        """Handoffs not yet applied, cancelled or ended (of one schedule, or all), oldest first."""
        query = sa.select(oncall_handoffs).where(oncall_handoffs.c.state == PENDING).order_by(oncall_handoffs.c.id)
        if schedule is not None:
            query = query.where(oncall_handoffs.c.schedule == schedule)
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_row(r) for r in rows]
