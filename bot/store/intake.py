"""The durable alert intake: accepted webhook alerts waiting for their channel's poster.

An alert is stored once per (platform, id, space). Its ``status`` moves
``waiting`` -> ``posting`` -> ``carded`` for a card of its own, or ``waiting`` ->
``digesting`` -> ``digested`` when a storm rolls it into a digest. ``posting`` and
``digesting`` mark a Slack call that may or may not have landed (the process died
mid-call): the poster reconciles those against the channel before posting again.

Each channel row is a lease (``lease_owner`` until ``lease_until``) so exactly one
poster, in any process or replica on this database, drains a channel at a time, and it
carries ``blocked_until``: Slack's ``Retry-After`` for the channel as a whole. Leases are
taken on rows locked first (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write
transaction holds the whole file) and renewed by a conditional ``UPDATE``, so two
posters never both hold a channel. Storing an alert inserts it only if its key is new
and otherwise locks its row before comparing, so a re-delivery and the poster's move of
the same alert are applied one after the other on either engine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bot.models import ItemState, Target
from bot.store.db import Store, insert
from bot.store.tables import intake_alerts, intake_channels, intake_digest_rows, intake_digests

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


_A = intake_alerts.c
_C = intake_channels.c
# Alerts not yet in Slack, or carded with a change to redraw: a channel with any has work.
_UNPOSTED = _A.status.in_((WAITING, POSTING, DIGESTING))
_HAS_WORK = sa.or_(_UNPOSTED, _A.change_note.is_not(None))
# One alert by its key, for statements run once per alert (``_params``).
_BY_KEY = sa.and_(
    _A.platform == sa.bindparam("k_platform"), _A.item_id == sa.bindparam("k_item"), _A.space == sa.bindparam("k_space")
)


def _is(target: Target) -> sa.ColumnElement[bool]:
    platform, item_id, space = _key(target)
    return sa.and_(_A.platform == platform, _A.item_id == item_id, _A.space == space)


def _params(targets: Sequence[Target]) -> list[dict[str, str]]:
    # In key order, the order every writer of several alerts takes their row locks in.
    return [{"k_platform": p, "k_item": i, "k_space": s} for p, i, s in sorted({_key(t) for t in targets})]


def _alert(row: sa.RowMapping) -> QueuedAlert:
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
        done: dict[int, Accepted] = {}
        new_channels: set[str] = set()
        # Alerts are written in key order (a stable sort keeps a repeated one in batch order),
        # the order every writer of several alerts locks them in, so two cannot deadlock.
        order = sorted(range(len(alerts)), key=lambda i: _key(alerts[i][0].target))
        async with self.store.transaction(urgent=True) as conn:
            for i in order:
                state, channel = alerts[i]
                platform, item_id, space = _key(state.target)
                stmt = (
                    insert(conn, intake_alerts)
                    .values(
                        platform=platform,
                        item_id=item_id,
                        space=space,
                        channel=channel,
                        state=state.model_dump_json(),
                        status=WAITING,
                        received_at=now,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=[_A.platform, _A.item_id, _A.space])
                )
                if (await conn.execute(stmt)).rowcount == 1:
                    new_channels.add(channel)
                    done[i] = Accepted(state.target, channel, "queued")
                    continue
                # Stored already: lock the row so the poster cannot move it between our read
                # of its status and our write.
                query = sa.select(_A.state, _A.status, _A.change_note).where(_is(state.target)).with_for_update()
                row = (await conn.execute(query)).mappings().one()
                old = ItemState.model_validate_json(row["state"])
                note = change_note(old, state)
                if note is None:
                    done[i] = Accepted(state.target, channel, "unchanged")
                    continue
                # A card already in Slack gets redrawn and a thread note; one still waiting
                # is simply posted with the new state.
                pending = note if row["status"] in (CARDED, POSTING) else None
                if pending and row["change_note"]:
                    pending = f"{row['change_note']}; {pending}"
                await conn.execute(
                    sa.update(intake_alerts)
                    .where(_is(state.target))
                    .values(state=state.model_dump_json(), change_note=pending, updated_at=now)
                )
                done[i] = Accepted(state.target, channel, "updated")
            if new_channels:
                stmt = insert(conn, intake_channels).on_conflict_do_nothing(index_elements=[_C.channel])
                await conn.execute(stmt, [{"channel": channel} for channel in sorted(new_channels)])
        return [done[i] for i in range(len(alerts))]

    # ---- leases --------------------------------------------------------------------------

    async def claim_channels(self, owner: str, *, lease_s: float) -> list[str]:
        """Lease every channel with work whose lease is free, expired or already ours."""
        now = time.time()
        async with self.store.read() as conn:
            if (await conn.execute(sa.select(_A.channel).where(_HAS_WORK).limit(1))).first() is None:
                return []  # nothing to post anywhere: no write, no lock
        free = sa.or_(_C.lease_owner.is_(None), _C.lease_owner == owner, _C.lease_until < now)
        with_work = sa.select(_A.channel).where(_HAS_WORK).distinct()
        # Lock the free channels first; one another poster is leasing right now is skipped
        # (it is theirs), so two posters never wait on each other here.
        takeable = (
            sa.select(_C.channel)
            .where(free, _C.channel.in_(with_work))
            .order_by(_C.channel)
            .with_for_update(skip_locked=True)
        )
        async with self.store.transaction() as conn:
            channels = list((await conn.execute(takeable)).scalars())
            if channels:
                await conn.execute(
                    sa.update(intake_channels)
                    .where(_C.channel.in_(channels))
                    .values(lease_owner=owner, lease_until=now + lease_s)
                )
            held = sa.select(_C.channel).where(_C.lease_owner == owner)
            return list((await conn.execute(held)).scalars())

    async def renew(self, channel: str, owner: str, *, lease_s: float) -> bool:
        """Extend our lease on ``channel``; False when another poster holds it now."""
        stmt = (
            sa.update(intake_channels)
            .where(_C.channel == channel, _C.lease_owner == owner)
            .values(lease_until=time.time() + lease_s)
        )
        async with self.store.transaction() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def release(self, channel: str, owner: str) -> None:
        stmt = (
            sa.update(intake_channels)
            .where(_C.channel == channel, _C.lease_owner == owner)
            .values(lease_owner=None, lease_until=0.0)
        )
        async with self.store.transaction() as conn:
            await conn.execute(stmt)

    async def blocked_until(self, channel: str) -> float:
        query = sa.select(_C.blocked_until).where(_C.channel == channel)
        async with self.store.read() as conn:
            until = (await conn.execute(query)).scalar_one_or_none()
        return float(until) if until is not None else 0.0

    async def block(self, channel: str, until: float) -> None:
        """Record Slack's Retry-After for the whole channel (every poster honours it)."""
        # Only ever later: a shorter Retry-After seen meanwhile does not shorten a longer one.
        stmt = (
            sa.update(intake_channels)
            .where(_C.channel == channel, _C.blocked_until < float(until))
            .values(blocked_until=float(until))
        )
        async with self.store.transaction() as conn:
            await conn.execute(stmt)

    # ---- the poster's reads and moves ------------------------------------------------------

    async def in_status(self, channel: str, status: str, *, limit: int = 1000) -> list[QueuedAlert]:
        """Alerts of ``channel`` in ``status``, oldest first."""
        query = (
            sa.select(intake_alerts)
            .where(_A.channel == channel, _A.status == status)
            .order_by(_A.received_at, _A.item_id)
            .limit(limit)
        )
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_alert(r) for r in rows]

    async def count_waiting(self, channel: str) -> int:
        query = sa.select(sa.func.count()).select_from(intake_alerts).where(_A.channel == channel, _A.status == WAITING)
        async with self.store.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def changed(self, channel: str, *, limit: int = 20) -> list[QueuedAlert]:
        """Carded alerts whose re-delivery changed something: the card needs redrawing."""
        query = (
            sa.select(intake_alerts)
            .where(_A.channel == channel, _A.status == CARDED, _A.change_note.is_not(None))
            .order_by(_A.updated_at)
            .limit(limit)
        )
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_alert(r) for r in rows]

    async def move(
        self, targets: Sequence[Target], status: str, *, card_ts: str | None = None, digest_id: str | None = None
    ) -> None:
        """Move alerts to ``status`` (``posting``/``digesting`` stamp the attempt time)."""
        if not targets:
            return
        now = time.time()
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if card_ts is not None:
            values["card_ts"] = card_ts
        if digest_id is not None:
            values["digest_id"] = digest_id
        if status in (POSTING, DIGESTING):
            values["attempt_at"] = now
        async with self.store.transaction() as conn:
            await conn.execute(sa.update(intake_alerts).where(_BY_KEY).values(values), _params(targets))

    async def noted(self, target: Target, note: str) -> None:
        """The card was redrawn for ``note``: clear it unless a newer change arrived meanwhile."""
        stmt = sa.update(intake_alerts).where(_is(target), _A.change_note == note).values(change_note=None)
        async with self.store.transaction() as conn:
            await conn.execute(stmt)

    # ---- digests -------------------------------------------------------------------------------

    async def new_digest(self, channel: str, rows: Sequence[tuple[Target, str, str]]) -> str:
        """Store a digest of (target, severity, title) rows and mark its alerts ``digesting``."""
        digest_id = uuid.uuid4().hex[:12]
        now = time.time()
        async with self.store.transaction() as conn:
            await conn.execute(sa.insert(intake_digests).values(id=digest_id, channel=channel, created_at=now))
            if not rows:
                return digest_id
            await conn.execute(
                sa.insert(intake_digest_rows),
                [
                    {"digest_id": digest_id, "seq": seq, "target": target.key, "severity": severity, "title": title}
                    for seq, (target, severity, title) in enumerate(rows)
                ],
            )
            await conn.execute(
                sa.update(intake_alerts)
                .where(_BY_KEY)
                .values(status=DIGESTING, digest_id=digest_id, attempt_at=now, updated_at=now),
                _params([target for target, _, _ in rows]),
            )
        return digest_id

    async def digest_posted(self, digest_id: str, ts: str) -> None:
        async with self.store.transaction() as conn:
            await conn.execute(sa.update(intake_digests).where(intake_digests.c.id == digest_id).values(ts=ts))
            await conn.execute(
                sa.update(intake_alerts)
                .where(_A.digest_id == digest_id, _A.status == DIGESTING)
                .values(status=DIGESTED, updated_at=time.time())
            )

    async def digest_abandoned(self, digest_id: str) -> None:
        """The digest never reached Slack: its alerts wait again (the next digest lists them)."""
        async with self.store.transaction() as conn:
            await conn.execute(
                sa.update(intake_alerts)
                .where(_A.digest_id == digest_id, _A.status == DIGESTING)
                .values(status=WAITING, digest_id=None)
            )
            await conn.execute(sa.delete(intake_digests).where(intake_digests.c.id == digest_id))

    async def digest_rows(self, digest_id: str) -> list[DigestRow]:
        """The rows a digest lists, in table order ([] for an unknown digest)."""
        r = intake_digest_rows.c
        query = sa.select(r.seq, r.target, r.severity, r.title).where(r.digest_id == digest_id).order_by(r.seq)
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [DigestRow(r["seq"], Target.from_key(r["target"]), r["severity"], r["title"]) for r in rows]

    async def digest_channel(self, digest_id: str) -> tuple[str, str | None] | None:
        """(channel, ts) of a digest, or None."""
        d = intake_digests.c
        async with self.store.read() as conn:
            row = (await conn.execute(sa.select(d.channel, d.ts).where(d.id == digest_id))).mappings().first()
        return (row["channel"], row["ts"]) if row else None

    # ---- metrics -------------------------------------------------------------------------------

    async def stats(self) -> dict[str, tuple[int, float | None]]:
        """Per channel: (alerts not yet in Slack, receipt time of the oldest of them)."""
        query = (
            sa.select(_A.channel, sa.func.count().label("n"), sa.func.min(_A.received_at).label("oldest"))
            .where(_UNPOSTED)
            .group_by(_A.channel)
        )
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {r["channel"]: (int(r["n"]), r["oldest"]) for r in rows}

    async def channels(self) -> list[str]:
        async with self.store.read() as conn:
            return list((await conn.execute(sa.select(_C.channel))).scalars())
