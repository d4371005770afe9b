"""`/triage mine` across platforms, and Slack's own 429s retried rather than losing a reply."""

from __future__ import annotations

from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import BOB
from tests.scenario.harness import BotHarness

FINDING = "bWluZS1maW5kaW5nLTE="


async def test_mine_lists_what_a_person_holds_on_every_platform(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """After the bot assigns items to Bob, `/triage mine @bob` names each of them, per platform."""
    datadog_fake.add_finding(FINDING, title="Public bucket")
    kibana_fake.add_alert("m1", space="secops", rule_name="Beaconing")
    xpanse_fake.add_incident("7001", description="Open RDP")
    await bot.command(f"assign dd:{FINDING} kibana:secops/m1 xpanse:7001 to <@{BOB}|bob>")
    await bot.settle()
    await bot.command(f"mine <@{BOB}|bob>")
    await bot.settle()
    reply = slack_fake.responses[-1]["text"]
    assert "holds 3 open items" in reply
    assert f"dd:{FINDING}" in reply and "kibana:secops/m1" in reply and "xpanse:7001" in reply


async def test_slack_rate_limit_is_waited_out(bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake) -> None:
    """A 429 from chat.postMessage is retried after Retry-After; the outcome still reaches the channel."""
    xpanse_fake.add_incident("7002", description="Expired certificate")
    slack_fake.rate_limit("chat.postMessage", times=1, retry_after=1)
    await bot.command("severity xpanse:7002 low")
    await bot.settle()
    posts = slack_fake.calls_to("chat.postMessage")
    assert len(posts) == 3  # the refused attempt, then the summary and its threaded detail
    assert xpanse_fake.incidents["7002"].manual_severity == "low"
    assert not [j for j in await bot.svc.jobs.unfinished() if j.verb == "severity"]
