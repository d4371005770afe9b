"""The registry of live cards: where each alert card is and what it last showed.

Every place that posts or redraws an alert card (the reporter, the alert poster) records
it here: channel, ts, thread, the item, a snapshot of the fields the card shows, and when
it was posted and last updated. The reconciler re-reads the items of the cards updated
within its window and redraws those whose snapshot no longer matches the platform; the
reminder pass nudges each unassigned item once (``card_reminders`` is keyed by item, so
once across restarts and replicas). ``loop_leases`` holds a named lease so one replica
at a time runs the reconciler, the same conditional ``UPDATE`` as the job claims.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.models import ItemState, Target
from bot.store.db import Store

# The fields of an item a card shows and the reconciler compares, in the order it words them.
SHOWN_FIELDS = ("assignees", "status", "severity", "case", "muted")


def snapshot(state: ItemState) -> dict[str, Any]:
    """What a card drawn from ``state`` shows, as the reconciler compares it."""
    return {
        "assignees": sorted(a.lower() for a in state.assignees),
        "status": (state.status or "").lower() or None,
        "severity": (state.severity or "").lower() or None,
        "case": state.case or None,
        "muted": state.muted,
    }


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The fields of ``SHOWN_FIELDS`` that differ between two snapshots."""
    return [name for name in SHOWN_FIELDS if before.get(name) != after.get(name)]


@dataclass(frozen=True)
class LiveCard:
    """One card in Slack as the registry knows it."""

    channel: str
    ts: str
    thread_ts: str | None
    target: Target
    shown: dict[str, Any]
    posted_at: float
    updated_at: float

    @property
    def unassigned(self) -> bool:
        return not self.shown.get("assignees")


def _card(row: Any) -> LiveCard:
    return LiveCard(
        channel=row["channel"],
        ts=row["ts"],
        thread_ts=row["thread_ts"],
        target=Target.from_key(row["target"]),
        shown=json.loads(row["shown"]),
        posted_at=row["posted_at"],
        updated_at=row["updated_at"],
    )


class CardStore:
    """Live cards, reminders and loop leases in the shared store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(
        self, *, channel: str, ts: str, state: ItemState, now: float, thread_ts: str | None = None
    ) -> None:
        """A card was posted or redrawn at ``now`` showing ``state``; the first post's time stays."""
        async with self.store.transaction() as conn:
            await conn.execute(
                "INSERT INTO live_cards (channel, ts, thread_ts, target, shown, posted_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT (channel, ts) DO UPDATE SET target=excluded.target,"
                " shown=excluded.shown, updated_at=excluded.updated_at,"
                " thread_ts=COALESCE(excluded.thread_ts, live_cards.thread_ts)",
                (channel, ts, thread_ts, state.target.key, json.dumps(snapshot(state)), now, now),
            )

    async def live(self, *, since: float, limit: int = 5000) -> list[LiveCard]:
        """Cards posted or updated at or after ``since``, most recently updated first."""
        async with self.store.conn.execute(
            "SELECT * FROM live_cards WHERE updated_at >= ? ORDER BY updated_at DESC LIMIT ?", (since, limit)
        ) as cur:
            return [_card(r) for r in await cur.fetchall()]

    async def get(self, channel: str, ts: str) -> LiveCard | None:
        async with self.store.conn.execute("SELECT * FROM live_cards WHERE channel=? AND ts=?", (channel, ts)) as cur:
            row = await cur.fetchone()
        return _card(row) if row else None

    async def forget(self, channel: str, ts: str) -> None:
        """The card is gone from Slack (deleted, no longer editable): stop reconciling it."""
        async with self.store.transaction() as conn:
            await conn.execute("DELETE FROM live_cards WHERE channel=? AND ts=?", (channel, ts))

    # ---- reminders ---------------------------------------------------------------------

    async def unreminded(self, *, posted_before: float, since: float) -> list[LiveCard]:
        """Live cards posted before ``posted_before`` whose item was never nudged, oldest first."""
        async with self.store.conn.execute(
            "SELECT * FROM live_cards WHERE posted_at <= ? AND updated_at >= ?"
            " AND target NOT IN (SELECT target FROM card_reminders) ORDER BY posted_at",
            (posted_before, since),
        ) as cur:
            return [_card(r) for r in await cur.fetchall()]

    async def claim_reminder(self, card: LiveCard, *, now: float) -> bool:
        """Take the one nudge of ``card``'s item; False when it was already sent (anywhere)."""
        async with self.store.transaction() as conn:
            cur = await conn.execute(
                "INSERT OR IGNORE INTO card_reminders (target, channel, ts, sent_at) VALUES (?,?,?,?)",
                (card.target.key, card.channel, card.ts, now),
            )
            return cur.rowcount == 1

    async def unclaim_reminder(self, target: Target) -> None:
        """The nudge never reached Slack: the next pass may send it."""
        async with self.store.transaction() as conn:
            await conn.execute("DELETE FROM card_reminders WHERE target=?", (target.key,))

    async def reminded(self, targets: Sequence[Target]) -> set[str]:
        """The keys among ``targets`` whose nudge was sent."""
        keys = [t.key for t in targets]
        if not keys:
            return set()
        marks = ",".join("?" * len(keys))
        async with self.store.conn.execute(f"SELECT target FROM card_reminders WHERE target IN ({marks})", keys) as cur:
            return {r["target"] for r in await cur.fetchall()}

    # ---- leases --------------------------------------------------------------------------

    async def lease(self, name: str, owner: str, *, now: float, lease_s: float) -> bool:
        """Hold (take or renew) the lease ``name`` until ``now + lease_s``; False when another
        owner holds it unexpired."""
        async with self.store.transaction() as conn:
            await conn.execute("INSERT OR IGNORE INTO loop_leases (name) VALUES (?)", (name,))
            cur = await conn.execute(
                "UPDATE loop_leases SET owner=?, until=? WHERE name=? AND (owner IS NULL OR owner=? OR until<?)",
                (owner, now + lease_s, name, owner, now),
            )
            return cur.rowcount == 1

    async def release(self, name: str, owner: str) -> None:
        async with self.store.transaction() as conn:
            await conn.execute("UPDATE loop_leases SET owner=NULL, until=0 WHERE name=? AND owner=?", (name, owner))
