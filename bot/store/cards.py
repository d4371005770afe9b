"""The registry of live cards: where each alert card is and what it last showed.

Every place that posts or redraws an alert card (the reporter, the alert poster) records
it here: channel, ts, thread, the item, a snapshot of the fields the card shows, and when
it was posted and last updated. The reconciler re-reads the items of the cards updated
within its window and redraws those whose snapshot no longer matches the platform; the
reminder pass nudges each unassigned item once (``card_reminders`` is keyed by item, so
once across restarts and replicas: an ``INSERT … ON CONFLICT DO NOTHING`` that only one
writer wins, on SQLite and PostgreSQL alike). ``loop_leases`` holds a named lease so one
replica at a time runs the reconciler: a conditional ``UPDATE`` of the lease row, which the
database applies to one writer at a time (the row lock on PostgreSQL, the write lock on
SQLite), so the second sees the first's owner and takes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bot.models import ItemState, Target
from bot.store.db import Store, insert
from bot.store.tables import card_reminders, live_cards, loop_leases

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


def _card(row: sa.RowMapping) -> LiveCard:
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
            stmt = insert(conn, live_cards).values(
                channel=channel,
                ts=ts,
                thread_ts=thread_ts,
                target=state.target.key,
                shown=json.dumps(snapshot(state)),
                posted_at=float(now),
                updated_at=float(now),
            )
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[live_cards.c.channel, live_cards.c.ts],
                    set_={
                        "target": stmt.excluded.target,
                        "shown": stmt.excluded.shown,
                        "updated_at": stmt.excluded.updated_at,
                        "thread_ts": sa.func.coalesce(stmt.excluded.thread_ts, live_cards.c.thread_ts),
                    },
                )
            )

    async def live(self, *, since: float, limit: int = 5000) -> list[LiveCard]:
        """Cards posted or updated at or after ``since``, most recently updated first."""
        query = (
            sa.select(live_cards)
            .where(live_cards.c.updated_at >= float(since))
            .order_by(live_cards.c.updated_at.desc())
            .limit(limit)
        )
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_card(r) for r in rows]

    async def get(self, channel: str, ts: str) -> LiveCard | None:
        query = sa.select(live_cards).where(live_cards.c.channel == channel, live_cards.c.ts == ts)
        async with self.store.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _card(row) if row else None

    async def forget(self, channel: str, ts: str) -> None:
        """The card is gone from Slack (deleted, no longer editable): stop reconciling it."""
        async with self.store.transaction() as conn:
            await conn.execute(sa.delete(live_cards).where(live_cards.c.channel == channel, live_cards.c.ts == ts))

    # ---- reminders ---------------------------------------------------------------------

    async def unreminded(self, *, posted_before: float, since: float) -> list[LiveCard]:
        """Live cards posted before ``posted_before`` whose item was never nudged, oldest first."""
        query = (
            sa.select(live_cards)
            .where(
                live_cards.c.posted_at <= float(posted_before),
                live_cards.c.updated_at >= float(since),
                live_cards.c.target.not_in(sa.select(card_reminders.c.target)),
            )
            .order_by(live_cards.c.posted_at)
        )
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_card(r) for r in rows]

    async def claim_reminder(self, card: LiveCard, *, now: float) -> bool:
        """Take the one nudge of ``card``'s item; False when it was already sent (anywhere)."""
        async with self.store.transaction() as conn:
            stmt = (
                insert(conn, card_reminders)
                .values(target=card.target.key, channel=card.channel, ts=card.ts, sent_at=float(now))
                .on_conflict_do_nothing(index_elements=[card_reminders.c.target])
            )
            result = await conn.execute(stmt)
        return result.rowcount == 1

    async def unclaim_reminder(self, target: Target) -> None:
        """The nudge never reached Slack: the next pass may send it."""
        async with self.store.transaction() as conn:
            await conn.execute(sa.delete(card_reminders).where(card_reminders.c.target == target.key))

    async def reminded(self, targets: Sequence[Target]) -> set[str]:
        """The keys among ``targets`` whose nudge was sent."""
        keys = [t.key for t in targets]
        if not keys:
            return set()
        query = sa.select(card_reminders.c.target).where(card_reminders.c.target.in_(keys))
        async with self.store.read() as conn:
            return set((await conn.execute(query)).scalars().all())

    # ---- leases --------------------------------------------------------------------------

    async def lease(self, name: str, owner: str, *, now: float, lease_s: float) -> bool:
        """Hold (take or renew) the lease ``name`` until ``now + lease_s``; False when another
        owner holds it unexpired."""
        lease = loop_leases.c
        async with self.store.transaction() as conn:
            await conn.execute(
                insert(conn, loop_leases).values(name=name).on_conflict_do_nothing(index_elements=[lease.name])
            )
            result = await conn.execute(
                sa.update(loop_leases)
                .where(
                    lease.name == name, sa.or_(lease.owner.is_(None), lease.owner == owner, lease.until < float(now))
                )
                .values(owner=owner, until=float(now + lease_s))
            )
        return result.rowcount == 1

    async def release(self, name: str, owner: str) -> None:
        async with self.store.transaction() as conn:
            await conn.execute(
                sa.update(loop_leases)
                .where(loop_leases.c.name == name, loop_leases.c.owner == owner)
                .values(owner=None, until=0.0)
            )
