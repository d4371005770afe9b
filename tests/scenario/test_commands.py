"""Slash commands end to end: signed form posts in, platform writes and Slack replies out."""

from __future__ import annotations

from tests.blockkit import assert_valid_message
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, DD_BOB, KB_BOB
from tests.scenario.harness import CHANNEL, BotHarness

FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="


def _texts(slack: SlackFake, method: str) -> list[str]:
    return [c.args.get("text", "") for c in slack.calls_to(method)]


async def test_assign_mixed_platforms_by_slash_command(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake, kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """`/triage assign dd:… kibana:secops/… xpanse:… to @bob` assigns on all three and threads the outcome."""
    datadog_fake.add_finding(FINDING, title="Public S3 bucket", severity="high")
    kibana_fake.add_alert("a1", space="secops", rule_name="Brute force", severity="high")
    xpanse_fake.add_incident("5471", description="Exposed RDP")
    resp = await bot.command(f"assign dd:{FINDING} kibana:secops/a1 xpanse:5471 to <@{BOB}|bob>")
    assert resp.status_code == 200
    assert "On it" in resp.text
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_BOB
    assert kibana_fake.alerts["secops"]["a1"]["kibana.alert.workflow_assignee_ids"] == [KB_BOB]
    assert xpanse_fake.incidents["5471"].assigned_user_mail == "bob@example.com"
    posts = slack_fake.calls_to("chat.postMessage")
    assert len(posts) == 2, posts  # the summary in the channel, then the detail in its thread
    parent, detail = posts
    assert parent.args["channel"] == CHANNEL and "thread_ts" not in parent.args or not parent.args.get("thread_ts")
    assert detail.args["thread_ts"]
    assert_valid_message(detail.args["blocks"], detail.args.get("text"))
    assert "3 done" in detail.args["text"] or "3" in detail.args["text"]


async def test_usage_error_is_ephemeral_and_changes_nothing(bot: BotHarness, slack_fake: SlackFake,
                                                            datadog_fake: DatadogFake) -> None:
    """A malformed command gets the verb's usage in the ack and makes no platform call."""
    resp = await bot.command("assign dd:abc")
    assert resp.status_code == 200
    assert "Usage" in resp.text or "usage" in resp.text
    await bot.settle()
    assert datadog_fake.requests == []
    assert slack_fake.calls_to("chat.postMessage") == []


async def test_bad_signature_is_refused_and_nothing_runs(bot: BotHarness, datadog_fake: DatadogFake) -> None:
    """A request signed with the wrong secret gets 401 and nothing executes."""
    datadog_fake.add_finding(FINDING)
    resp = await bot.command(f"assign dd:{FINDING} to me", secret="not-the-secret")
    assert resp.status_code == 401
    await bot.settle()
    assert datadog_fake.requests == []


async def test_help_lists_every_verb(bot: BotHarness) -> None:
    """`/triage help` answers with the grammar."""
    resp = await bot.command("help")
    for verb in ("assign", "unassign", "attach", "resolve", "comment", "severity", "handoff", "map"):
        assert verb in resp.text


async def test_unmapped_user_gets_actionable_message(bot: BotHarness, slack_fake: SlackFake,
                                                     kibana_fake: KibanaFake) -> None:
    """Assigning to someone with no Kibana profile reports how to map them, per item, in the thread."""
    kibana_fake.add_alert("a2", rule_name="Malware")
    await bot.command("assign kibana:a2 to <@U0CAROL>")
    await bot.settle()
    detail = slack_fake.calls_to("chat.postMessage")[-1]
    assert "/triage map" in str(detail.args["blocks"])
    assert kibana_fake.alerts["default"]["a2"]["kibana.alert.workflow_assignee_ids"] == []


async def test_alice_assigns_to_herself_then_mapping_is_remembered(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """`me` resolves by Slack email once; the second action needs no users.info call."""
    datadog_fake.add_finding(FINDING)
    await bot.command(f"assign dd:{FINDING} to me", user=ALICE)
    await bot.settle()
    calls = len(slack_fake.calls_to("users.info"))
    await bot.command(f"unassign dd:{FINDING}", user=ALICE)
    await bot.command(f"assign dd:{FINDING} to me", user=ALICE)
    await bot.settle()
    assert len(slack_fake.calls_to("users.info")) == calls
    assert datadog_fake.findings[FINDING]["assignee_id"] is not None
