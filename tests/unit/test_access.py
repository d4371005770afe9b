"""The one authorisation check: which policy verb a request needs, and what system edges may do."""

from __future__ import annotations

import pytest

from bot.core.access import Access, GroupDirectory, policy_verb
from bot.core.policy import Policy
from bot.core.service import ActionRequest, Source, Step
from bot.errors import ForbiddenError
from bot.models import JobParams, Platform, Target, Verb


def request(verb: Verb, *, source: Source = Source.SLASH, actor: str = "U0BOB", **extra: object) -> ActionRequest:
    return ActionRequest.model_validate({"verb": verb, "team_id": "T1", "actor_id": actor, "source": source, **extra})


class NoGroups(GroupDirectory):
    """A directory that must not be asked: these policies name no groups."""

    def __init__(self) -> None:
        self.groups = []

    def groups_of(self, user_id: str) -> frozenset[str]:
        raise AssertionError("no group look-up was needed")


def test_acting_for_someone_else_is_its_own_verb() -> None:
    """map/unmap of another user needs map_others; handing off another's items needs handoff_others."""
    assert policy_verb(request(Verb.MAP)) == "map"
    assert policy_verb(request(Verb.MAP, subject="U0BOB")) == "map"
    assert policy_verb(request(Verb.UNMAP, subject="U0ADA", platform=Platform.XPANSE)) == "map_others"
    assert policy_verb(request(Verb.HANDOFF, params=JobParams(from_user="U0ADA", assignee="U0BOB"))) == (
        "handoff_others"
    )
    assert policy_verb(request(Verb.HANDOFF, params=JobParams(from_user="U0BOB", assignee="U0ADA"))) == "handoff"
    assert policy_verb(request(Verb.HANDOFF, step=Step.CONFIRM, job_ref="j1")) == "handoff"


async def test_read_verbs_are_refused_by_the_policy_like_writes() -> None:
    """history, mine, whoami, show and help pass the same check as assign."""
    policy = Policy.model_validate({"admins": {"users": ["U0ADA"]}, "verbs": {"history": {}, "help": {}}})
    access = Access(policy, NoGroups())
    history = request(Verb.HISTORY, targets=[Target(platform=Platform.KIBANA, id="a1")])
    with pytest.raises(ForbiddenError, match="Only admins may see the history"):
        await access.authorise(history)
    with pytest.raises(ForbiddenError, match="Only admins may get help"):
        await access.authorise(request(Verb.HELP))
    grant = await access.authorise(request(Verb.HISTORY, actor="U0ADA"))
    assert grant.admin
    assert not (await access.authorise(request(Verb.WHOAMI))).admin


async def test_system_edges_may_use_only_their_own_verb() -> None:
    """An authenticated webhook may post cards (show) and a schedule may hand off; nothing else."""
    access = Access(Policy(), NoGroups())
    await access.authorise(request(Verb.SHOW, source=Source.WEBHOOK, actor="webhook"))
    await access.authorise(request(Verb.HANDOFF, source=Source.SCHEDULE, actor="schedule"))
    with pytest.raises(ForbiddenError):
        await access.authorise(request(Verb.ASSIGN, source=Source.WEBHOOK, actor="webhook"))
    with pytest.raises(ForbiddenError):
        await access.authorise(request(Verb.RESOLVE, source=Source.SCHEDULE, actor="schedule"))
