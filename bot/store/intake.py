"""The durable alert intake: accepted webhook alerts waiting for their channel's poster.

An alert is stored once per (platform, id, space). Its ``status`` moves
``waiting`` -> ``posting`` -> ``carded`` for a card of its own, or ``waiting`` ->
``digesting`` -> ``digested`` when a storm rolls it into a digest. ``posting`` and
``digesting`` mark a Slack call that may or may not have landed (the process died
mid-call): the poster reconciles those against the channel before posting again.

Each channel row is a lease (``lease_owner`` until ``lease_until``) so exactly one
poster, in any process or replica on this database, drains a channel at a time, and it
carries ``blocked_until``: Slack's ``Retry-After`` for the channel as a whole.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.models import ItemState, Target
from bot.store.db import Store

WAITING, POSTING, CARDED, DIGESTING, DIGESTED = "waiting", "posting", "carded", "digesting", "digested"


@dataclass(frozen=True)
class Accepted:
    """What storing one alert did: ``queued`` (new), ``updated`` (changed) or ``unchanged``."""

    target: Target
    channel: str
    outcome: str


@dataclass(frozen=True)
class QueuedAlert:
    """One stored alert as the poster sees it."""

    target: Target
    channel: str
    state: ItemState
    status: str
    received_at: float
    attempt_at: float | None
    card_ts: str | None
    digest_id: str | None
    change_note: str | None


@dataclass(frozen=True)
class DigestRow:
    """One row of a digest: which alert, and what the table showed for it."""

    seq: int
    target: Target
    severity: str
    title: str


def _key(target: Target) -> tuple[str, str, str]:
    return target.platform.value, target.id, target.space or ""


def _alert(row: Any) -> QueuedAlert:
    state = ItemState.model_validate_json(row["state"])
    return QueuedAlert(
        target=state.target,
        channel=row["channel"],
        state=state,
        status=row["status"],
        received_at=row["received_at"],
        attempt_at=row["attempt_at"],
        card_ts=row["card_ts"],
        digest_id=row["digest_id"],
        change_note=row["change_note"],
    )


def change_note(old: ItemState, new: ItemState) -> str | None:
    """What a re-delivery changed on the card (severity, status, title), or None."""
    parts = [
        f"{label} {before or '—'} → {after or '—'}"
        for label, before, after in (
            ("severity", old.severity, new.severity),
            ("status", old.status, new.status),
            ("title", old.title, new.title),
        )
        if (before or "") != (after or "")
    ]
    return "; ".join(parts) or None


class IntakeStore:
    """Alerts, channel leases and digests in the shared store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- the webhook's one write -----------------------------------------------------

    async def accept(self, alerts: Sequence[tuple[ItemState, str]]) -> list[Accepted]:
        """Store a batch of (state, channel) in one transaction; re-deliveries update in place."""
        now = time.time()
        done: list[Accepted] = []
        conn = self.store.conn
        async with self.store.transaction(urgent=True):
            for state, channel in alerts:
                key = _key(state.target)
                async with conn.execute(
                    "SELECT state, status, change_note FROM intake_alerts WHERE platform=? AND item_id=? AND space=?",
                    key,
                ) as cur:
                    row = await cur.fetchone()
                if row is None:
                    await conn.execute(
                        "INSERT INTO intake_alerts (platform, item_id, space, channel, state, status,"
                        " received_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
                        (*key, channel, state.model_dump_json(), WAITING, now, now),
                    )
                    await conn.execute("INSERT OR IGNORE INTO intake_channels (channel) VALUES (?)", (channel,))
                    done.append(Accepted(state.target, channel, "queued"))
                    continue
                old = ItemState.model_validate_json(row["state"])
                note = change_note(old, state)
                if note is None:
                    done.append(Accepted(state.target, channel, "unchanged"))
                    continue
                # A card already in Slack gets redrawn and a thread note; one still waiting
                # is simply posted with the new state.
                pending = note if row["status"] in (CARDED, POSTING) else None
                if pending and row["change_note"]:
                    pending = f"{row['change_note']}; {pending}"
                await conn.execute(
                    "UPDATE intake_alerts SET state=?, change_note=?, updated_at=?"
                    " WHERE platform=? AND item_id=? AND space=?",
                    (state.model_dump_json(), pending, now, *key),
                )
                done.append(Accepted(state.target, channel, "updated"))
        return done

    # ---- leases --------------------------------------------------------------------------

    async def claim_channels(self, owner: str, *, lease_s: float) -> list[str]:
        """Lease every channel with work whose lease is free, expired or already ours."""
        now = time.time()
        async with self.store.conn.execute(
            "SELECT 1 FROM intake_alerts WHERE status IN ('waiting','posting','digesting')"
            " OR change_note IS NOT NULL LIMIT 1"
        ) as cur:
            if await cur.fetchone() is None:
                return []  # nothing to post anywhere: no write, no lock
        async with self.store.transaction() as conn:
            await conn.execute(
                "UPDATE intake_channels SET lease_owner=?, lease_until=?"
                " WHERE (lease_owner IS NULL OR lease_owner=? OR lease_until<?)"
                " AND channel IN (SELECT DISTINCT channel FROM intake_alerts"
                "  WHERE status IN ('waiting','posting','digesting') OR change_note IS NOT NULL)",
                (owner, now + lease_s, owner, now),
            )
            async with conn.execute("SELECT channel FROM intake_channels WHERE lease_owner=?", (owner,)) as cur:
                return [r["channel"] for r in await cur.fetchall()]

    async def renew(self, channel: str, owner: str, *, lease_s: float) -> bool:
        """Extend our lease on ``channel``; False when another poster holds it now."""
        async with self.store.transaction() as conn:
            cur = await conn.execute(
                "UPDATE intake_channels SET lease_until=? WHERE channel=? AND lease_owner=?",
                (time.time() + lease_s, channel, owner),
            )
            return cur.rowcount == 1

    async def release(self, channel: str, owner: str) -> None:
        async with self.store.transaction() as conn:
            await conn.execute(
                "UPDATE intake_channels SET lease_owner=NULL, lease_until=0 WHERE channel=? AND lease_owner=?",
                (channel, owner),
            )

    async def blocked_until(self, channel: str) -> float:
        async with self.store.conn.execute(
            "SELECT blocked_until FROM intake_channels WHERE channel=?", (channel,)
        ) as cur:
            row = await cur.fetchone()
        return float(row["blocked_until"]) if row else 0.0

    async def block(self, channel: str, until: float) -> None:
        """Record Slack's Retry-After for the whole channel (every poster honours it)."""
        async with self.store.transaction() as conn:
            await conn.execute(
                "UPDATE intake_channels SET blocked_until=MAX(blocked_until, ?) WHERE channel=?", (until, channel)
            )

    # ---- the poster's reads and moves ------------------------------------------------------

    async def in_status(self, channel: str, status: str, *, limit: int = 1000) -> list[QueuedAlert]:
        """Alerts of ``channel`` in ``status``, oldest first."""
        async with self.store.conn.execute(
            "SELECT * FROM intake_alerts WHERE channel=? AND status=? ORDER BY received_at, item_id LIMIT ?",
            (channel, status, limit),
        ) as cur:
            return [_alert(r) for r in await cur.fetchall()]

    async def count_waiting(self, channel: str) -> int:
        async with self.store.conn.execute(
            "SELECT COUNT(*) FROM intake_alerts WHERE channel=? AND status=?", (channel, WAITING)
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def changed(self, channel: str, *, limit: int = 20) -> list[QueuedAlert]:
        """Carded alerts whose re-delivery changed something: the card needs redrawing."""
        async with self.store.conn.execute(
            "SELECT * FROM intake_alerts WHERE channel=? AND status=? AND change_note IS NOT NULL"
            " ORDER BY updated_at LIMIT ?",
            (channel, CARDED, limit),
        ) as cur:
            return [_alert(r) for r in await cur.fetchall()]

    async def move(
        self, targets: Sequence[Target], status: str, *, card_ts: str | None = None, digest_id: str | None = None
    ) -> None:
        """Move alerts to ``status`` (``posting``/``digesting`` stamp the attempt time)."""
        now = time.time()
        async with self.store.transaction() as conn:
            for target in targets:
                await conn.execute(
                    "UPDATE intake_alerts SET status=?, card_ts=COALESCE(?, card_ts),"
                    " digest_id=COALESCE(?, digest_id), attempt_at=CASE WHEN ? IN ('posting','digesting')"
                    " THEN ? ELSE attempt_at END, updated_at=? WHERE platform=? AND item_id=? AND space=?",
                    (status, card_ts, digest_id, status, now, now, *_key(target)),
                )

    async def noted(self, target: Target, note: str) -> None:
        """The card was redrawn for ``note``: clear it unless a newer change arrived meanwhile."""
        async with self.store.transaction() as conn:
            await conn.execute(
                "UPDATE intake_alerts SET change_note=NULL WHERE platform=? AND item_id=? AND space=?"
                " AND change_note=?",
                (*_key(target), note),
            )

    # ---- digests -------------------------------------------------------------------------------

    async def new_digest(self, channel: str, rows: Sequence[tuple[Target, str, str]]) -> str:
        """Store a digest of (target, severity, title) rows and mark its alerts ``digesting``."""
        digest_id = uuid.uuid4().hex[:12]
        now = time.time()
        async with self.store.transaction() as conn:
            await conn.execute(
                "INSERT INTO intake_digests (id, channel, created_at) VALUES (?,?,?)", (digest_id, channel, now)
            )
            for seq, (target, severity, title) in enumerate(rows):
                await conn.execute(
                    "INSERT INTO intake_digest_rows (digest_id, seq, target, severity, title) VALUES (?,?,?,?,?)",
                    (digest_id, seq, target.key, severity, title),
                )
                await conn.execute(
                    "UPDATE intake_alerts SET status=?, digest_id=?, attempt_at=?, updated_at=?"
                    " WHERE platform=? AND item_id=? AND space=?",
                    (DIGESTING, digest_id, now, now, *_key(target)),
                )
        return digest_id

    async def digest_posted(self, digest_id: str, ts: str) -> None:
        async with self.store.transaction() as conn:
            await conn.execute("UPDATE intake_digests SET ts=? WHERE id=?", (ts, digest_id))
            await conn.execute(
                "UPDATE intake_alerts SET status=?, updated_at=? WHERE digest_id=? AND status=?",
                (DIGESTED, time.time(), digest_id, DIGESTING),
            )

    async def digest_abandoned(self, digest_id: str) -> None:
        """The digest never reached Slack: its alerts wait again (the next digest lists them)."""
        async with self.store.transaction() as conn:
            await conn.execute(
                "UPDATE intake_alerts SET status=?, digest_id=NULL WHERE digest_id=? AND status=?",
                (WAITING, digest_id, DIGESTING),
            )
            await conn.execute("DELETE FROM intake_digests WHERE id=?", (digest_id,))

    async def digest_rows(self, digest_id: str) -> list[DigestRow]:
        """The rows a digest lists, in table order ([] for an unknown digest)."""
        async with self.store.conn.execute(
            "SELECT seq, target, severity, title FROM intake_digest_rows WHERE digest_id=? ORDER BY seq",
            (digest_id,),
        ) as cur:
            rows = await cur.fetchall()
        return [DigestRow(r["seq"], Target.from_key(r["target"]), r["severity"], r["title"]) for r in rows]

    async def digest_channel(self, digest_id: str) -> tuple[str, str | None] | None:
        """(channel, ts) of a digest, or None."""
        async with self.store.conn.execute("SELECT channel, ts FROM intake_digests WHERE id=?", (digest_id,)) as cur:
            row = await cur.fetchone()
        return (row["channel"], row["ts"]) if row else None

    # ---- metrics -------------------------------------------------------------------------------

    async def stats(self) -> dict[str, tuple[int, float | None]]:
        """Per channel: (alerts not yet in Slack, receipt time of the oldest of them)."""
        async with self.store.conn.execute(
            "SELECT channel, COUNT(*) AS n, MIN(received_at) AS oldest FROM intake_alerts"
            " WHERE status IN ('waiting','posting','digesting') GROUP BY channel"
        ) as cur:
            rows = await cur.fetchall()
        return {r["channel"]: (int(r["n"]), r["oldest"]) for r in rows}

    async def channels(self) -> list[str]:
        async with self.store.conn.execute("SELECT channel FROM intake_channels") as cur:
            return [r["channel"] for r in await cur.fetchall()]
