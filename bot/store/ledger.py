"""The ledger: one append-only line per change, refusal and failure the bot saw.

Reads answer "what did the bot last do to this item" (duplicate checks, "changed
since" notes, what someone holds) and export the audit trail. Item results are
appended by ``JobStore.record_results`` in the same transaction as the items.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.models import ItemResult, JobParams, Platform, Target
from bot.store.db import Store
from bot.store.statements import ASSIGNMENT_VERBS, LATEST_CHANGE, SUCCESS
from bot.store.tables import ledger


class LedgerEntry(BaseModel):
    """One ledger line."""

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


def _entry(row: Mapping[Any, Any]) -> LedgerEntry:
    return LedgerEntry.model_validate({k: row[k] for k in LedgerEntry.model_fields})


async def append_results(
    conn: AsyncConnection,
    *,
    at: float,
    job_id: str,
    team_id: str,
    actor_id: str,
    verb: str,
    results: Iterable[ItemResult],
) -> None:
    """Append one line per item result; the caller holds the transaction."""
    rows = [
        {
            "at": at,
            "job_id": job_id,
            "team_id": team_id,
            "actor_id": actor_id,
            "verb": verb,
            "platform": r.target.platform.value,
            "target": r.target.key,
            "before": r.before,
            "after": r.after,
            "outcome": r.outcome.value,
            "detail": r.detail,
            "status": r.status,
        }
        for r in results
    ]
    if rows:
        await conn.execute(sa.insert(ledger), rows)


def recent_from_row(row: Mapping[Any, Any] | None, *, within: float | None) -> RecentChange | None:
    """A ``LATEST_CHANGE`` row as a ``RecentChange``; None without one or when older than ``within`` s."""
    if row is None or (within is not None and row["at"] < time.time() - within):
        return None
    params = row["job_params"]
    assignee = JobParams.model_validate_json(params).assignee if params else None
    return RecentChange(entry=_entry(row), assignee=assignee)


class Ledger:
    """Appends to and reads the ledger in the shared store."""

    def __init__(self, store: Store) -> None:
        self.store = store

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
        async with self.store.transaction() as conn:
            await conn.execute(
                sa.insert(ledger).values(
                    at=time.time(),
                    job_id=job_id,
                    team_id=team_id,
                    actor_id=actor_id,
                    verb=verb,
                    platform=target.platform.value if target else None,
                    target=target.key if target else None,
                    outcome=outcome,
                    detail=detail,
                )
            )

    async def _entries(self, query: sa.Select[Any]) -> list[LedgerEntry]:
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_entry(r) for r in rows]

    async def history(self, target: Target, *, limit: int = 50) -> list[LedgerEntry]:
        """An item's trail, newest first."""
        query = (
            sa.select(ledger)
            .where(ledger.c.target == target.key)
            .order_by(ledger.c.at.desc(), ledger.c.id.desc())
            .limit(limit)
        )
        return await self._entries(query)

    async def ledger_since(self, since: float) -> list[LedgerEntry]:
        """Every line from ``since`` on, oldest first: the audit export."""
        return await self._entries(sa.select(ledger).where(ledger.c.at >= since).order_by(ledger.c.at, ledger.c.id))

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
        async with self.store.read() as conn:
            row = (await conn.execute(LATEST_CHANGE, {"target": target.key})).mappings().first()
        return recent_from_row(row, within=within)

    async def last_known(self, target: Target) -> LedgerEntry | None:
        """The newest ledger line that tells who the bot left the item with (``after``; None: nobody).

        Includes "already in that state" skips, which also read the platform's value.
        """
        told = sa.or_(
            sa.and_(ledger.c.outcome.in_(SUCCESS), ledger.c.verb.in_(("assign", "unassign", "handoff"))),
            sa.and_(
                ledger.c.outcome == "skipped", ledger.c.verb.in_(("assign", "handoff")), ledger.c.after.is_not(None)
            ),
        )
        query = (
            sa.select(ledger)
            .where(ledger.c.target == target.key, told)
            .order_by(ledger.c.at.desc(), ledger.c.id.desc())
            .limit(1)
        )
        entries = await self._entries(query)
        return entries[0] if entries else None

    async def held_by(self, *, platform: Platform, identity: str) -> list[Target]:
        """Items whose latest assignment change by the bot left them with ``identity`` (and not resolved since)."""
        later = ledger.alias("l2")
        newest = (
            sa.select(sa.func.max(later.c.id))
            .where(later.c.target == ledger.c.target, later.c.verb.in_(ASSIGNMENT_VERBS), later.c.outcome.in_(SUCCESS))
            .scalar_subquery()
        )
        query = sa.select(ledger.c.target).where(
            ledger.c.platform == platform.value,
            ledger.c.after == identity,
            ledger.c.verb.in_(("assign", "handoff")),
            ledger.c.outcome.in_(SUCCESS),
            ledger.c.id == newest,
        )
        async with self.store.read() as conn:
            keys = (await conn.execute(query)).scalars().all()
        return [Target.from_key(k) for k in keys]
