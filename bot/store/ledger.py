"""The ledger: one append-only line per change, refusal and failure the bot saw.

Reads answer "what did the bot last do to this item" (duplicate checks, "changed
since" notes, what someone holds) and export the audit trail. Item results are
appended by ``JobStore.record_results`` in the same transaction as the items.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import aiosqlite
from pydantic import BaseModel

from bot.models import ItemResult, Platform, Target
from bot.store.db import Store

# The newest successful assign/unassign/handoff/resolve of one target (``?``: its key).
LATEST_CHANGE_SQL = (
    "SELECT l.*, json_extract(j.params, '$.assignee') AS job_assignee FROM ledger l"
    " LEFT JOIN jobs j ON j.id = l.job_id"
    " WHERE l.target = ? AND l.outcome IN ('done','warning')"
    " AND l.verb IN ('assign','unassign','handoff','resolve')"
    " ORDER BY l.at DESC, l.id DESC LIMIT 1"
)

_INSERT = (
    "INSERT INTO ledger (at, job_id, team_id, actor_id, verb, platform, target, before, after,"
    " outcome, detail, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


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


async def append_results(
    conn: aiosqlite.Connection,
    *,
    at: float,
    job_id: str,
    team_id: str,
    actor_id: str,
    verb: str,
    results: Iterable[ItemResult],
) -> None:
    """Append one line per item result; the caller holds the transaction."""
    await conn.executemany(
        _INSERT,
        [
            (
                at,
                job_id,
                team_id,
                actor_id,
                verb,
                r.target.platform.value,
                r.target.key,
                r.before,
                r.after,
                r.outcome.value,
                r.detail,
                r.status,
            )
            for r in results
        ],
    )


def recent_from_row(row: Any, *, within: float | None) -> RecentChange | None:
    """A ``LATEST_CHANGE_SQL`` row as a ``RecentChange``; None without one or when older than ``within`` s."""
    if row is None or (within is not None and row["at"] < time.time() - within):
        return None
    data = dict(row)
    job_assignee = data.pop("job_assignee", None)
    return RecentChange(entry=LedgerEntry.model_validate(data), assignee=job_assignee)


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
        """Every line from ``since`` on, oldest first: the audit export."""
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
        async with self.store.conn.execute(LATEST_CHANGE_SQL, (target.key,)) as cur:
            row = await cur.fetchone()
        return recent_from_row(row, within=within)

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
