"""Who a Slack user is on each platform: explicit mappings first, then their Slack email.

``IdentityResolver.resolve`` answers "which Datadog user / Kibana profile /
Xpanse email acts for <@U123>": an explicit mapping wins; otherwise the Slack
profile email (``users.info``, needs ``users:read.email``) is looked up on the
platform and the match is stored with source ``auto`` so the next resolution
costs no call at all. When nothing matches it raises ``NotMappedError`` with a
sentence that says what to do. Slack profiles are cached for ``profile_ttl``
seconds and concurrent look-ups of the same user share one ``users.info`` call
(and one platform look-up).

It also holds the logic of ``/triage map``, ``unmap`` and ``whoami`` (pure
results; rendering lives in ``bot/slack``), and ``unworkable``: whether a Slack user
can be given work at all. ``verify_identity`` lives in ``bot.core.verification``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict

from bot import rules
from bot.core.verification import IdentityStatus, Verification, verify_identity
from bot.errors import (
    NotConfiguredError,
    NotMappedError,
    PlatformAuthError,
    UnsupportedError,
    UsageError,
)
from bot.models import Platform, Verb
from bot.platforms.base import PlatformClient
from bot.slack_web import SlackApiError, SlackWeb
from bot.store.mappings import Identity, MappingStore, Source, UserIdentities, validate_identity

# Re-exported: callers read whoami's and verify's results from here.
__all__ = [
    "IdentityResolver",
    "IdentityStatus",
    "SingleFlight",
    "SlackProfile",
    "Unworkable",
    "Verification",
    "map_hint",
    "verify_identity",
]

log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Slackbot answers users.info with is_bot false, but it is no more a person than a bot is.
SLACKBOT = "USLACKBOT"


def map_hint(user_id: str, platform: Platform) -> str:
    """The command an admin runs to map ``user_id`` on ``platform`` by hand."""
    return f"`/triage map <@{user_id}> {platform.value}={rules.IDENTITY_EXAMPLE[platform]}`"


class SingleFlight(Generic[K, V]):
    """Coalesce concurrent calls with the same key into one running coroutine.

    Callers that arrive while a call for their key is in flight await its result
    (or its exception); a cancelled caller does not cancel the shared call.
    """

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, factory: Callable[[], Awaitable[V]]) -> V:
        """Return the result of ``factory()``, shared with every concurrent caller of ``key``."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(factory())
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._done, key))
        return await asyncio.shield(task)

    def _done(self, key: K, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        # Retrieve the exception so a flight whose callers were all cancelled is not
        # reported as "exception never retrieved".
        if not task.cancelled():
            task.exception()


class SlackProfile(BaseModel):
    """The parts of a Slack user the bot uses."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    team_id: str | None = None
    email: str | None = None
    real_name: str = ""
    display_name: str = ""
    deleted: bool = False
    is_bot: bool = False

    @classmethod
    def from_api(cls, user: Mapping[str, Any]) -> SlackProfile:
        """Build from a ``users.info`` / ``users.lookupByEmail`` ``user`` object."""
        profile = user.get("profile") or {}
        return cls(
            user_id=str(user.get("id", "")),
            team_id=user.get("team_id"),
            email=(profile.get("email") or None),
            real_name=str(user.get("real_name") or profile.get("real_name") or ""),
            display_name=str(profile.get("display_name") or ""),
            deleted=bool(user.get("deleted", False)),
            # Slack marks app users with is_app_user as well; either way not a person.
            is_bot=bool(user.get("is_bot", False) or user.get("is_app_user", False)),
        )


class Unworkable(BaseModel):
    """Why a Slack user cannot be given work: ``reason`` names them; ``checked`` is False when
    Slack could not be asked (so the answer is "unknown", not "no")."""

    model_config = ConfigDict(frozen=True)

    reason: str
    checked: bool = True


def _now() -> datetime:
    return datetime.now(UTC)


class IdentityResolver:
    """Resolve Slack users to platform identities and back, and run map/unmap/whoami."""

    def __init__(
        self,
        *,
        mappings: MappingStore,
        clients: Mapping[Platform, PlatformClient],
        slack: SlackWeb,
        profile_ttl: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mappings = mappings
        # A platform absent from ``clients`` is not configured in this deployment.
        self.clients = dict(clients)
        self.slack = slack
        self.profile_ttl = profile_ttl
        self._clock = clock
        self._profiles: dict[tuple[str, str], tuple[float, SlackProfile | None]] = {}
        self._profile_flights: SingleFlight[tuple[str, str], SlackProfile | None] = SingleFlight()
        self._resolve_flights: SingleFlight[tuple[str, str, Platform], str] = SingleFlight()

    # ---- Slack profiles -------------------------------------------------------------------

    async def profile(self, team_id: str, user_id: str) -> SlackProfile | None:
        """The user's Slack profile (cached for ``profile_ttl`` s, concurrent look-ups share one
        ``users.info``); None for an unknown user; raises ``SlackApiError`` for other failures."""
        key = (team_id, user_id)
        cached = self._profiles.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        return await self._profile_flights.run(key, lambda: self._fetch_profile(key))

    async def _fetch_profile(self, key: tuple[str, str]) -> SlackProfile | None:
        _team_id, user_id = key
        try:
            response = await self.slack.users_info(user=user_id)
            user = response.get("user")
            profile = SlackProfile.from_api(user) if isinstance(user, Mapping) else None
        except SlackApiError as exc:
            if exc.response.get("error") != "user_not_found":
                raise
            profile = None
        self._profiles[key] = (self._clock() + self.profile_ttl, profile)
        return profile

    async def unworkable(self, team_id: str, user_id: str) -> Unworkable | None:
        """Why ``user_id`` cannot be given work, or None when they can (from the cached profile).

        Refused: a deactivated account (``deleted``), a bot or app user (``is_bot``,
        ``is_app_user``, Slackbot), a user Slack does not know (``user_not_found``); a Slack
        failure comes back ``checked=False``. Never raises for Slack failures.
        """
        try:
            profile = await self.profile(team_id, user_id)
        except SlackApiError as exc:
            error = exc.response.get("error")
            log.warning("identity.user_unchecked", user_id=user_id, error=error)
            return Unworkable(reason=f"the bot could not check <@{user_id}> with Slack ({error})", checked=False)
        if profile is None:
            return Unworkable(reason=f"Slack does not know user {user_id}")
        if profile.deleted:
            return Unworkable(reason=f"<@{user_id}>'s Slack account is deactivated")
        if profile.is_bot or user_id == SLACKBOT:
            return Unworkable(reason=f"<@{user_id}> is a bot or app user, not a person")
        return None

    async def assignee_problem(self, team_id: str, user_id: str) -> str | None:
        """The sentence to refuse an assignment to ``user_id`` with, or None when they can take it;
        when Slack cannot be asked, nothing is assigned either (the actor is told to retry)."""
        problem = await self.unworkable(team_id, user_id)
        if problem is None:
            return None
        return problem.reason if problem.checked else f"{problem.reason}; nothing was changed, try again"

    def forget(self, team_id: str, user_id: str) -> None:
        """Drop the cached profile (e.g. on a ``user_change`` event)."""
        self._profiles.pop((team_id, user_id), None)

    async def email(self, team_id: str, user_id: str) -> str | None:
        """The email on the user's Slack profile, or None (no email, no scope, unknown user);
        raises ``SlackApiError`` when Slack fails otherwise."""
        profile = await self.profile(team_id, user_id)
        return profile.email if profile else None

    async def display_name(self, team_id: str, user_id: str) -> str:
        """The user's Slack real name (then display name), or their mention when Slack has
        neither or cannot be asked; never raises for Slack failures."""
        try:
            profile = await self.profile(team_id, user_id)
        except SlackApiError as exc:
            log.warning("identity.profile_failed", user_id=user_id, error=exc.response.get("error"))
            profile = None
        if profile is not None and (profile.real_name or profile.display_name):
            return profile.real_name or profile.display_name
        return f"<@{user_id}>"

    # ---- resolution -----------------------------------------------------------------------

    async def resolve(self, team_id: str, user_id: str, platform: Platform) -> str:
        """The identity ``user_id`` acts as on ``platform``: the stored mapping, else their Slack
        email matched on the platform (stored as 'auto'); raises ``NotConfiguredError`` for a
        platform without credentials and ``NotMappedError`` saying how to fix a missing one."""
        platform = Platform(platform)
        mapped = await self.mappings.get_one(team_id, user_id, platform)
        if mapped is not None:
            return mapped.value
        return await self._resolve_flights.run(
            (team_id, user_id, platform), lambda: self._resolve_auto(team_id, user_id, platform)
        )

    async def _resolve_auto(self, team_id: str, user_id: str, platform: Platform) -> str:
        # A caller whose read of the mapping began before another flight stored it starts a
        # flight of its own after that one has ended: read again here, so it finds the mapping.
        mapped = await self.mappings.get_one(team_id, user_id, platform)
        if mapped is not None:
            return mapped.value
        client = self.clients.get(platform)
        if client is None:
            raise NotConfiguredError(platform.label)
        profile = await self.profile(team_id, user_id)
        if profile is None:
            raise NotMappedError(
                f"<@{user_id}> is not a Slack user the bot can find, so they have no "
                f"{platform.label} {rules.IDENTITY_NOUN[platform]}"
            )
        if not profile.email:
            raise NotMappedError(
                f"<@{user_id}> has no email on their Slack profile (or the bot lacks the "
                f"users:read.email scope), so their {platform.label} {rules.IDENTITY_NOUN[platform]} "
                f"cannot be found automatically; an admin can run {map_hint(user_id, platform)}"
            )
        value, confirmed = await self._lookup(platform, client, profile.email, user_id)
        try:
            stored = await self.mappings.set_many(
                team_id,
                user_id,
                {platform: value},
                source=Source.AUTO,
                set_by=None,
                verified=confirmed,
            )
        except UsageError as exc:
            # The match is already someone else's identity: guessing would act as them.
            raise NotMappedError(
                f"<@{user_id}>'s email {profile.email} matches {platform.label} "
                f"{rules.IDENTITY_NOUN[platform]} {value}, but {exc}; an admin can run "
                f"{map_hint(user_id, platform)}"
            ) from exc
        identity = stored.get(platform)
        assert identity is not None
        log.info("identity.auto_mapped", user_id=user_id, platform=platform.value, confirmed=confirmed)
        return identity.value

    async def _lookup(self, platform: Platform, client: PlatformClient, email: str, user_id: str) -> tuple[str, bool]:
        """(identity, confirmed on the platform) for ``email``, or ``NotMappedError``."""
        if platform is Platform.XPANSE:
            try:
                user = await client.find_user_by_email(email)
            except (PlatformAuthError, UnsupportedError) as exc:
                if isinstance(exc, PlatformAuthError) and exc.status == 401:
                    raise  # the key itself is refused: nothing else will work either
                # Xpanse identifies users by email: when the key may not list users (402/403)
                # the email itself is still the best answer, just unconfirmed.
                log.warning("identity.xpanse_unconfirmed", user_id=user_id, error=str(exc))
                return email, False
            if user is None or not user.active:
                raise NotMappedError(
                    f"<@{user_id}> is not a user of the Xpanse tenant with the email {email} — "
                    f"an Xpanse admin must add them first; or an admin can run "
                    f"{map_hint(user_id, platform)} with the email they use in Xpanse"
                )
            return user.email or user.id, True
        user = await client.find_user_by_email(email)
        if user is not None and user.active:
            return user.id, True
        if platform is Platform.DATADOG:
            raise NotMappedError(
                f"<@{user_id}> has no active Datadog user with the email {email} — a Datadog "
                f"admin must invite (or re-enable) them; or an admin can run "
                f"{map_hint(user_id, platform)}"
            )
        raise NotMappedError(
            f"<@{user_id}> has no Kibana profile mapped — Kibana creates one when they first "
            f"log in (none found for {email}, or the bot cannot search Elasticsearch profiles); "
            f"an admin can run {map_hint(user_id, platform)}"
        )

    async def slack_user_for(self, platform: Platform, value: str, *, team_id: str | None = None) -> str | None:
        """The Slack user mapped to ``value`` on ``platform`` (to render an assignee as a
        mention), or None; no network call."""
        found = await self.mappings.find_by_value(platform, value, team_id=team_id)
        return found[1] if found else None

    # ---- commands -------------------------------------------------------------------------

    async def map(
        self, team_id: str, actor_id: str, target_user_id: str, values: Mapping[Platform, str]
    ) -> UserIdentities:
        """Store ``values`` for ``target_user_id`` all at once (source 'self' when the actor maps
        themselves, else 'admin'); raises ``UsageError`` for a malformed or taken value."""
        if not values:
            raise UsageError(
                "give at least one platform=value, e.g. `/triage map @someone datadog=<user UUID>`",
                verb=Verb.MAP,
            )
        # Validate everything before writing anything.
        clean = {Platform(p): validate_identity(p, v) for p, v in values.items()}
        source = Source.SELF if actor_id == target_user_id else Source.ADMIN
        result = await self.mappings.set_many(team_id, target_user_id, clean, source=source, set_by=actor_id)
        log.info(
            "identity.mapped",
            target=target_user_id,
            actor=actor_id,
            source=source.value,
            platforms=[p.value for p in clean],
        )
        return result

    async def unmap(self, team_id: str, target_user_id: str, platform: Platform) -> bool:
        """Remove the user's mapping on ``platform``; return whether there was one."""
        return await self.mappings.unset(team_id, target_user_id, Platform(platform))

    async def whoami(self, team_id: str, user_id: str, *, verify: bool = True) -> list[IdentityStatus]:
        """One status per platform (value, source, age and, with ``verify``, whether it still
        holds on the platform, checked concurrently); platform failures read 'unverified'."""
        identities = await self.mappings.get(team_id, user_id)
        now = _now()

        async def status(platform: Platform) -> IdentityStatus:
            identity: Identity | None = identities.get(platform)
            if identity is None:
                return IdentityStatus(platform=platform)
            verification = None
            if verify:
                verification = await verify_identity(platform, identity.value, self.clients.get(platform))
                if verification.ok:
                    await self.mappings.mark_verified(team_id, user_id, platform)
            return IdentityStatus(
                platform=platform,
                value=identity.value,
                source=identity.source,
                set_by=identity.set_by,
                updated_at=identity.updated_at,
                verified_at=identity.verified_at,
                age=now - identity.updated_at,
                verification=verification,
            )

        return list(await asyncio.gather(*(status(p) for p in Platform)))
