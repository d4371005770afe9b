"""User groups in the policy are read before serving and kept warm: no request waits on Slack to be authorised."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.core.access import Access, GroupDirectory, GroupsUnknownError
from bot.core.policy import Policy
from bot.core.service import ActionRequest, Source
from bot.models import Platform, Target, Verb
from bot.slack_web import SlackRequestError, SlackWeb
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, seed_people
from tests.scenario.harness import BotHarness, fake_settings

POLICY = "verbs:\n  assign: {groups: [S0SOC]}\n"


@pytest_asyncio.fixture
async def grouped(
    tmp_path: Path,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> AsyncIterator[BotHarness]:
    """The bot with `assign` open to members of S0SOC; Alice is a member, Bob is not."""
    seed_people(slack_fake, datadog_fake, elasticsearch_fake, xpanse_fake)
    slack_fake.add_usergroup("S0SOC", [ALICE])
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = fake_settings(
        db=str(tmp_path / "triage.db"),
        slack=slack_fake,
        datadog=datadog_fake,
        kibana=kibana_fake,
        es=elasticsearch_fake,
        xpanse=xpanse_fake,
        triage_policy=str(policy),
    )
    harness = await BotHarness(settings, slack_fake).start()
    try:
        yield harness
    finally:
        await harness.stop()


async def test_membership_is_read_at_start_and_never_on_the_ack_path(
    grouped: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """The group is listed once before serving; commands from members and outsiders add no Slack call."""
    kibana_fake.add_alert("g1")
    assert len(slack_fake.calls_to("usergroups.users.list")) == 1
    refused = await grouped.command("assign kibana:g1 to me", user=BOB)
    assert "S0SOC" in refused.text
    allowed = await grouped.command("assign kibana:g1 to me", user=ALICE)
    assert "On it" in allowed.text
    await grouped.settle()
    assert len(slack_fake.calls_to("usergroups.users.list")) == 1


async def test_membership_events_apply_at_once(grouped: BotHarness, kibana_fake: KibanaFake) -> None:
    """`subteam_members_changed` lets Bob in and `subteam_updated` takes him out, with no reload."""
    kibana_fake.add_alert("g2")
    resp = await grouped.event(
        {"type": "subteam_members_changed", "subteam_id": "S0SOC", "added_users": [BOB], "removed_users": []}
    )
    assert resp.status_code == 200
    assert "On it" in (await grouped.command("assign kibana:g2 to me", user=BOB)).text
    await grouped.event({"type": "subteam_updated", "subteam": {"id": "S0SOC", "users": [ALICE]}})
    await grouped.settle()
    assert "S0SOC" in (await grouped.command("assign kibana:g2 to me", user=BOB)).text


class Unreachable(SlackWeb):
    """A Slack that cannot be reached: every user-group listing fails to connect."""

    async def usergroups_users_list(self, **kwargs: Any) -> Any:
        raise SlackRequestError("could not reach Slack for usergroups.users.list: ConnectError")


async def test_unknown_membership_refuses_at_once_and_says_to_try_again() -> None:
    """When the groups could not be read, a request that depends on them is refused, not held."""
    policy = Policy.model_validate({"verbs": {"assign": {"groups": ["S0SOC"]}}})
    groups = GroupDirectory(Unreachable("xoxb-x", "http://127.0.0.1:9/api/"), policy)
    await groups.load()
    access = Access(policy, groups)
    request = ActionRequest(
        verb=Verb.ASSIGN,
        team_id="T1",
        actor_id=ALICE,
        source=Source.SLASH,
        targets=[Target(platform=Platform.KIBANA, id="a1")],
    )
    with pytest.raises(GroupsUnknownError, match="try again in a moment"):
        await access.authorise(request)
    groups.replaced("S0SOC", [ALICE])
    assert not (await access.authorise(request)).admin
