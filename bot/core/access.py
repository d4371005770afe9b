"""The one authorisation check every request passes, whatever surface it came from.

``Access.authorise`` names the policy verb a request needs (acting for someone else
is its own, admin-only verb), looks up the actor's user groups when the answer can
depend on them, and either grants (saying whether the actor is an admin) or raises
``ForbiddenError`` with who may. Requests from the bot's own authenticated edges
(an alert webhook that passed its token check, a schedule) carry no Slack user and
are granted only the verb their edge exists for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.policy import HANDOFF_OTHERS, MAP_OTHERS, Policy
from bot.core.service import ActionRequest, Source, Step
from bot.errors import ForbiddenError
from bot.models import Verb

log = structlog.get_logger(__name__)

GROUPS_TTL_S = 300.0

# The verb each system edge may use; their requests are authenticated by the edge itself.
SYSTEM_VERBS: dict[Source, frozenset[Verb]] = {
    Source.WEBHOOK: frozenset({Verb.SHOW}),
    Source.SCHEDULE: frozenset({Verb.HANDOFF}),
}


class GroupDirectory:
    """Which of the policy's user groups a Slack user is in (usergroups.users.list, cached)."""

    def __init__(self, slack: AsyncWebClient, policy: Policy) -> None:
        self.slack = slack
        self.groups = sorted(policy.admins.groups | {g for r in policy.verbs.values() for g in r.groups})
        self._members: dict[str, tuple[float, frozenset[str]]] = {}

    async def groups_of(self, user_id: str) -> frozenset[str]:
        """The policy's groups ``user_id`` belongs to; a group Slack cannot list counts as empty."""
        found = set()
        for group in self.groups:
            cached = self._members.get(group)
            if cached is None or time.monotonic() - cached[0] > GROUPS_TTL_S:
                try:
                    resp = await self.slack.usergroups_users_list(usergroup=group)
                    members = frozenset(resp.get("users") or [])
                except SlackApiError as exc:
                    log.warning("usergroup_lookup_failed", group=group, error=str(exc.response.get("error")))
                    members = frozenset()
                cached = (time.monotonic(), members)
                self._members[group] = cached
            if user_id in cached[1]:
                found.add(group)
        return frozenset(found)


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
        groups = await self.groups.groups_of(request.actor_id) if need_groups else frozenset()
        self.policy.authorize(verb=verb, actor_id=request.actor_id, channel_id=request.channel_id, actor_groups=groups)
        return Grant(verb=verb, admin=self.policy.is_admin(actor_id=request.actor_id, actor_groups=groups))
