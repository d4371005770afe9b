"""The one authorisation check every request passes, whatever surface it came from.

``Access.authorise`` names the policy verb a request needs (acting for someone else
is its own, admin-only verb), looks up the actor's user groups when the answer can
depend on them, and either grants (saying whether the actor is an admin) or raises
``ForbiddenError`` with who may. Requests from the bot's own authenticated edges
(an alert webhook that passed its token check, a schedule) carry no Slack user and
are granted only the verb their edge exists for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from bot.core.policy import HANDOFF_OTHERS, MAP_OTHERS, Policy
from bot.core.service import ActionRequest, Source, Step
from bot.errors import ForbiddenError, UserError
from bot.models import Verb
from bot.slack_web import SlackApiError, SlackRequestError, SlackWeb

log = structlog.get_logger(__name__)

GROUPS_TTL_S = 300.0

# The verb each system edge may use; their requests are authenticated by the edge itself.
SYSTEM_VERBS: dict[Source, frozenset[Verb]] = {
    Source.WEBHOOK: frozenset({Verb.SHOW}),
    Source.SCHEDULE: frozenset({Verb.HANDOFF}),
}


class GroupsUnknownError(UserError):
    """The policy's user groups could not be read from Slack yet; the request is not decided."""


class GroupDirectory:
    """Who is in each user group the policy names, kept warm off the acknowledgement path.

    ``load`` reads every group once (``usergroups.users.list``) before the bot serves, a
    background task reloads them every ``ttl`` seconds, and the ``subteam_*`` events apply
    changes as they happen. ``groups_of`` answers from memory only: a request never waits
    on Slack to be authorised. A group Slack refuses to list (no such group, a missing
    scope) counts as empty, as Slack's answer is final; a group that could not be reached
    at all is unknown until a later load succeeds, and ``groups_of`` then raises
    ``GroupsUnknownError`` instead of guessing.
    """

    def __init__(self, slack: SlackWeb, policy: Policy, *, ttl: float = GROUPS_TTL_S) -> None:
        self.slack = slack
        self.ttl = ttl
        self.groups = sorted(policy.admins.groups | {g for r in policy.verbs.values() for g in r.groups})
        self._members: dict[str, frozenset[str]] = {}
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Read every group's members now; a group that cannot be reached keeps what was known."""
        for group in self.groups:
            try:
                resp = await self.slack.usergroups_users_list(usergroup=group)
                self._members[group] = frozenset(resp.get("users") or [])
            except SlackApiError as exc:
                log.warning("usergroup_lookup_failed", group=group, error=str(exc.response.get("error")))
                self._members[group] = frozenset()
            except (SlackRequestError, TimeoutError, OSError) as exc:
                log.warning("usergroup_unreachable", group=group, error=type(exc).__name__)

    def start(self) -> None:
        """Reload the groups in the background every ``ttl`` seconds (nothing to do without groups)."""
        if self.groups and self._task is None:
            self._task = asyncio.create_task(self._refresh(), name="usergroups-refresh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.ttl)
            await self.load()

    def members_changed(self, group: str, *, added: Iterable[str] = (), removed: Iterable[str] = ()) -> None:
        """Apply a ``subteam_members_changed`` event to a group the policy names."""
        if group in self.groups and group in self._members:
            self._members[group] = (self._members[group] | frozenset(added)) - frozenset(removed)

    def replaced(self, group: str, users: Iterable[str]) -> None:
        """Apply a ``subteam_updated`` event: the group's whole membership."""
        if group in self.groups:
            self._members[group] = frozenset(users)

    def groups_of(self, user_id: str) -> frozenset[str]:
        """The policy's groups ``user_id`` belongs to, from memory; ``GroupsUnknownError`` if unread."""
        if any(group not in self._members for group in self.groups):
            raise GroupsUnknownError(
                "The bot has not been able to read the Slack user groups its policy names yet; try again in a moment."
            )
        return frozenset(group for group in self.groups if user_id in self._members[group])


@dataclass(frozen=True)
class Grant:
    """What the policy allowed: the policy verb, and whether the actor is an admin."""

    verb: str
    admin: bool


def policy_verb(request: ActionRequest) -> str:
    """The policy's name for what ``request`` asks: acting for someone else is its own verb."""
    if request.verb in (Verb.MAP, Verb.UNMAP) and request.about != request.actor_id:
        return MAP_OTHERS
    if (
        request.verb is Verb.HANDOFF
        and request.step is Step.RUN
        and request.params.from_user not in (None, request.actor_id)
    ):
        return HANDOFF_OTHERS
    return request.verb.value


class Access:
    """The policy applied to requests."""

    def __init__(self, policy: Policy, groups: GroupDirectory) -> None:
        self.policy = policy
        self.groups = groups

    async def authorise(self, request: ActionRequest) -> Grant:
        """Grant ``request`` or raise ``ForbiddenError`` saying who may."""
        verb = policy_verb(request)
        allowed_system = SYSTEM_VERBS.get(request.source)
        if allowed_system is not None:
            if request.verb not in allowed_system:
                raise ForbiddenError(f"the {request.source.value} edge may not {request.verb.value}")
            return Grant(verb=verb, admin=False)
        need_groups = self.policy.needs_groups(verb) or (
            request.step in (Step.CONFIRM, Step.CANCEL) and bool(self.policy.admins.groups)
        )
        groups = self.groups.groups_of(request.actor_id) if need_groups else frozenset()
        self.policy.authorize(verb=verb, actor_id=request.actor_id, channel_id=request.channel_id, actor_groups=groups)
        return Grant(verb=verb, admin=self.policy.is_admin(actor_id=request.actor_id, actor_groups=groups))
