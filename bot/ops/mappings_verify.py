"""``triage-bot mappings verify``: re-check every stored identity on its platform and in Slack.

A mapping drifts when its platform identity is disabled or gone, or when it belongs to a
Slack user who cannot be given work (deactivated, a bot or app user, unknown to Slack);
it is unverified when the platform or Slack could not be asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from pydantic import BaseModel, Field

from bot.core.identity import Unworkable, Verification, verify_identity
from bot.models import Platform
from bot.platforms.base import PlatformClient
from bot.store.db import Store
from bot.store.mappings import MappingStore

# (team id, Slack user id) -> why that user cannot be given work, or None (IdentityResolver.unworkable).
SlackUserCheck = Callable[[str, str], Awaitable[Unworkable | None]]


class Drift(BaseModel):
    """One stored identity that no longer verifies (or could not be checked)."""

    team_id: str
    user_id: str
    platform: Platform
    value: str
    verification: Verification

    def line(self) -> str:
        return f"<@{self.user_id}> ({self.team_id}) {self.platform.value}={self.value}: {self.verification}"


class VerifyReport(BaseModel):
    """The result of re-checking every stored identity."""

    checked: int = 0
    ok: int = 0
    problems: list[Drift] = Field(default_factory=list)

    @property
    def drifts(self) -> list[Drift]:
        return [p for p in self.problems if p.verification.state == "drift"]

    @property
    def unverified(self) -> list[Drift]:
        return [p for p in self.problems if p.verification.state == "unverified"]

    def lines(self) -> list[str]:
        """The report as plain text lines for the CLI: a summary, then one line per problem."""
        out = [
            f"checked {self.checked} identities: {self.ok} ok, {len(self.drifts)} drifted, "
            f"{len(self.unverified)} unverified"
        ]
        out += [p.line() for p in self.problems]
        return out


async def verify_mappings(
    store_or_mappings: Store | MappingStore,
    clients: Mapping[Platform, PlatformClient],
    *,
    team_id: str | None = None,
    concurrency: int = 4,
    slack_users: SlackUserCheck | None = None,
) -> VerifyReport:
    """Re-check every stored identity on its platform (at most ``concurrency`` at a time),
    record the ones that verify, and report each drift or unverifiable identity; platform
    failures are reported, not raised.

    With ``slack_users`` (``IdentityResolver.unworkable``) the Slack user of each mapping is
    checked too: a mapping that points at a deactivated, bot/app or unknown Slack user is a
    drift (the bot would refuse to give them work), a Slack failure leaves it unverified.
    """
    mappings = store_or_mappings if isinstance(store_or_mappings, MappingStore) else MappingStore(store_or_mappings)
    users = await mappings.all(team_id=team_id)
    gate = asyncio.Semaphore(concurrency)
    report = VerifyReport()
    standing: dict[tuple[str, str], Unworkable | None] = {}
    if slack_users is not None:
        keys = sorted({(user.team_id, user.user_id) for user in users})

        async def slack_check(key: tuple[str, str]) -> None:
            async with gate:
                standing[key] = await slack_users(*key)

        await asyncio.gather(*(slack_check(k) for k in keys))

    async def check(team: str, user_id: str, platform: Platform, value: str) -> Drift | None:
        async with gate:
            verification = await verify_identity(platform, value, clients.get(platform))
        problem = standing.get((team, user_id))
        if problem is not None and (problem.checked or verification.ok):
            state: Literal["drift", "unverified"] = "drift" if problem.checked else "unverified"
            verification = Verification(state=state, detail=problem.reason)
        if verification.ok:
            await mappings.mark_verified(team, user_id, platform)
            return None
        return Drift(
            team_id=team,
            user_id=user_id,
            platform=platform,
            value=value,
            verification=verification,
        )

    jobs = [
        check(user.team_id, user.user_id, identity.platform, identity.value)
        for user in users
        for identity in user.identities
    ]
    results = await asyncio.gather(*jobs)
    report.checked = len(results)
    report.problems = [r for r in results if r is not None]
    report.ok = report.checked - len(report.problems)
    return report
