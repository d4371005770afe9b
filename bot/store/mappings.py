"""Which platform identity each Slack user acts as: stored, validated, looked up both ways.

One row per (workspace, Slack user, platform) in the ``mappings`` table. Values
are validated and normalised on the way in (Datadog user UUID, Kibana profile
uid, Xpanse email), so everything read back is usable as is. One identity belongs to at
most one Slack user per workspace: the unique key ``mappings_by_value`` enforces it on
both engines, and a write refused by it names the user who holds the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.errors import UsageError
from bot.models import Platform, Verb
from bot.rules import normalise_identity
from bot.store.db import Store, insert
from bot.store.tables import mappings


class Source(StrEnum):
    """Who put a mapping there."""

    ADMIN = "admin"  # an admin mapped someone else (command or import)
    SELF = "self"  # the user mapped themselves
    AUTO = "auto"  # resolved from the Slack profile email


class Identity(BaseModel):
    """One Slack user's identity on one platform, with where it came from."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    value: str
    source: Source
    set_by: str | None = None
    updated_at: datetime
    verified_at: datetime | None = None


class UserIdentities(BaseModel):
    """Every platform identity of one Slack user (``None`` where there is none)."""

    team_id: str
    user_id: str
    datadog: Identity | None = None
    kibana: Identity | None = None
    xpanse: Identity | None = None

    def get(self, platform: Platform) -> Identity | None:
        """The identity on ``platform``, if any."""
        identity: Identity | None = getattr(self, platform.value)
        return identity

    @property
    def identities(self) -> list[Identity]:
        """The identities present, in platform order."""
        return [i for p in Platform if (i := self.get(p)) is not None]

    @property
    def empty(self) -> bool:
        return not self.identities


def validate_identity(platform: Platform | str, value: str) -> str:
    """Return ``value`` normalised as a ``platform`` identity, or raise ``UsageError`` saying
    what shape was expected (Datadog user UUID, Kibana profile uid, Xpanse email).

    The shapes are ``bot.rules``', the same the ``/triage map`` parser applies."""
    try:
        platform = Platform(platform)
    except ValueError:
        raise UsageError(
            f"unknown platform {platform!r}: use one of " + ", ".join(p.value for p in Platform),
            verb=Verb.MAP,
        ) from None
    return normalise_identity(platform, value)


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _row_identity(row: sa.RowMapping) -> Identity:
    return Identity(
        platform=Platform(row["platform"]),
        value=row["value"],
        source=Source(row["source"]),
        set_by=row["set_by"],
        updated_at=datetime.fromisoformat(row["updated_at"]),
        verified_at=datetime.fromisoformat(row["verified_at"]) if row["verified_at"] else None,
    )


def _group(rows: Iterable[sa.RowMapping]) -> list[UserIdentities]:
    users: dict[tuple[str, str], UserIdentities] = {}
    for row in rows:
        key = (row["team_id"], row["user_id"])
        user = users.setdefault(key, UserIdentities(team_id=key[0], user_id=key[1]))
        identity = _row_identity(row)
        setattr(user, identity.platform.value, identity)
    return list(users.values())


class MappingStore:
    """Read and write Slack user → platform identity mappings in the shared ``Store``."""

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self._clock = clock

    async def get(self, team_id: str, user_id: str) -> UserIdentities:
        """Every identity of one Slack user (an empty ``UserIdentities`` when none)."""
        query = sa.select(mappings).where(mappings.c.team_id == team_id, mappings.c.user_id == user_id)
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        found = _group(rows)
        return found[0] if found else UserIdentities(team_id=team_id, user_id=user_id)

    async def get_one(self, team_id: str, user_id: str, platform: Platform) -> Identity | None:
        """The identity of one Slack user on one platform, if mapped."""
        query = sa.select(mappings).where(
            mappings.c.team_id == team_id,
            mappings.c.user_id == user_id,
            mappings.c.platform == Platform(platform).value,
        )
        async with self.store.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _row_identity(row) if row else None

    async def set(
        self,
        team_id: str,
        user_id: str,
        platform: Platform,
        value: str,
        *,
        source: Source | str,
        set_by: str | None,
    ) -> Identity:
        """Map one Slack user to ``value`` on ``platform`` (replacing any previous value);
        raise ``UsageError`` if the value is malformed or already another user's."""
        identities = await self.set_many(team_id, user_id, {Platform(platform): value}, source=source, set_by=set_by)
        identity = identities.get(Platform(platform))
        assert identity is not None
        return identity

    async def set_many(
        self,
        team_id: str,
        user_id: str,
        values: Mapping[Platform, str],
        *,
        source: Source | str,
        set_by: str | None,
        verified: bool = False,
    ) -> UserIdentities:
        """Map one Slack user on several platforms at once, all or nothing; raise ``UsageError``
        for a malformed value or one already mapped to another Slack user (nothing written)."""
        await self.set_bulk(team_id, [(user_id, values)], source=source, set_by=set_by, verified=verified)
        return await self.get(team_id, user_id)

    async def set_bulk(
        self,
        team_id: str,
        entries: Sequence[tuple[str, Mapping[Platform, str]]],
        *,
        source: Source | str,
        set_by: str | None,
        verified: bool = False,
    ) -> int:
        """Write (user_id, {platform: value}) entries in one transaction, all or nothing; return
        how many values were written; ``UsageError`` for an empty, malformed or taken value."""
        source = Source(source)
        clean = [
            (user_id, {Platform(p): validate_identity(p, v) for p, v in values.items()}) for user_id, values in entries
        ]
        if any(not values for _, values in clean):
            raise UsageError("nothing to map: give at least one platform=value", verb=Verb.MAP)
        now = _ts(self._clock())
        rows = [
            {
                "team_id": team_id,
                "user_id": user_id,
                "platform": platform.value,
                "value": value,
                "source": source.value,
                "set_by": set_by,
                "updated_at": now,
                "verified_at": now if verified else None,
            }
            for user_id, values in clean
            for platform, value in values.items()
        ]
        try:
            return await self._write(rows)
        except sa.exc.IntegrityError:
            # Another writer mapped one of these values to someone else after our check read
            # (on PostgreSQL the unique key, not a file lock, is what orders the two): that
            # writer has committed by now, so a second pass finds its row and says whose it is.
            return await self._write(rows)

    async def _write(self, rows: list[dict[str, str | None]]) -> int:
        async with self.store.transaction() as conn:
            for row in rows:
                await self._refuse_taken(conn, row)
                stmt = insert(conn, mappings).values(row)
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[mappings.c.team_id, mappings.c.user_id, mappings.c.platform],
                        set_={
                            name: stmt.excluded[name]
                            for name in ("value", "source", "set_by", "updated_at", "verified_at")
                        },
                    )
                )
        return len(rows)

    async def _refuse_taken(self, conn: AsyncConnection, row: Mapping[str, str | None]) -> None:
        query = sa.select(mappings.c.user_id).where(
            mappings.c.team_id == row["team_id"],
            mappings.c.platform == row["platform"],
            mappings.c.value == row["value"],
        )
        holder = (await conn.execute(query)).scalar_one_or_none()
        if holder is not None and holder != row["user_id"]:
            platform = Platform(str(row["platform"]))
            raise UsageError(
                f"{platform.label} identity {row['value']} is already mapped to <@{holder}>; "
                f"unmap it there first (`/triage unmap <@{holder}> {platform.value}`)",
                verb=Verb.MAP,
            )

    async def unset(self, team_id: str, user_id: str, platform: Platform) -> bool:
        """Remove one mapping; return whether there was one."""
        stmt = sa.delete(mappings).where(
            mappings.c.team_id == team_id,
            mappings.c.user_id == user_id,
            mappings.c.platform == Platform(platform).value,
        )
        async with self.store.transaction() as conn:
            result = await conn.execute(stmt)
        return result.rowcount > 0

    async def mark_verified(
        self, team_id: str, user_id: str, platform: Platform, *, at: datetime | None = None
    ) -> bool:
        """Record that the mapping was just confirmed on the platform; return whether it exists."""
        stmt = (
            sa.update(mappings)
            .where(
                mappings.c.team_id == team_id,
                mappings.c.user_id == user_id,
                mappings.c.platform == Platform(platform).value,
            )
            .values(verified_at=_ts(at or self._clock()))
        )
        async with self.store.transaction() as conn:
            result = await conn.execute(stmt)
        return result.rowcount > 0

    async def all(self, *, team_id: str | None = None) -> list[UserIdentities]:
        """Every mapped Slack user (optionally of one workspace), ordered by workspace and user."""
        query = sa.select(mappings).order_by(mappings.c.team_id, mappings.c.user_id)
        if team_id is not None:
            query = query.where(mappings.c.team_id == team_id)
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return _group(rows)

    async def find_by_value(
        self, platform: Platform, value: str, *, team_id: str | None = None
    ) -> tuple[str, str] | None:
        """The (team_id, user_id) mapped to ``value`` on ``platform`` (in ``team_id`` when given),
        or None; a malformed value is simply not found."""
        try:
            clean = validate_identity(platform, value)
        except UsageError:
            return None
        query = (
            sa.select(mappings.c.team_id, mappings.c.user_id)
            .where(mappings.c.platform == Platform(platform).value, mappings.c.value == clean)
            .order_by(mappings.c.team_id)
            .limit(1)
        )
        if team_id is not None:
            query = query.where(mappings.c.team_id == team_id)
        async with self.store.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return (row["team_id"], row["user_id"]) if row else None
