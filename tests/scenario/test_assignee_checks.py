"""Work is never given to someone who cannot do it: deactivated, bot/app or unknown Slack users.

The check runs on the worker, before the first platform write, from the cached
``users.info``; the whole job becomes one refusal in the thread, nothing is written to
any platform and the ledger records it. Every path that names an assignee is covered:
the slash command, the Assign… modal, a mapping that points at such a user, and both
phases of a handoff.
"""

from __future__ import annotations

import json

import pytest

from bot.models import JobState, Platform
from bot.slack.ids import ActionId
from bot.store.mappings import Source
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, DD_BOB
from tests.scenario.harness import CHANNEL, TEAM, BotHarness
from tests.scenario.test_cards import open_modal, show
from tests.scenario.test_handoff import button_message, seed_holdings, start_handoff, writes

FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="
DAVE, ROBOT, GHOST = "U0DAVE", "U0ROBOT", "U0GHOST"
DD_DAVE = "44444444-4444-4444-8444-444444444444"

REASONS = {
    DAVE: f"<@{DAVE}>'s Slack account is deactivated",
    ROBOT: f"<@{ROBOT}> is a bot or app user, not a person",
    GHOST: f"Slack does not know user {GHOST}",
}


def seed_unworkable(slack: SlackFake, dd: DatadogFake) -> None:
    """Dave left (deactivated, still a Datadog user); Robot is an app; Ghost is in no directory."""
    slack.add_user(DAVE, email="dave@example.com", real_name="Dave Departed", deleted=True)
    slack.add_user(ROBOT, email="robot@example.com", real_name="Deploy Robot", is_bot=True)
    dd.add_user(DD_DAVE, "dave@example.com", name="Dave Departed")


def seed_items(dd: DatadogFake, kb: KibanaFake, xp: XpanseFake) -> None:
    dd.add_finding(FINDING, title="Public S3 bucket")
    kb.add_alert("a1", space="secops")
    xp.add_incident("5471")


def platform_calls(dd: DatadogFake, kb: KibanaFake, xp: XpanseFake) -> int:
    """Every request the three platforms received (reads included)."""
    return len(dd.requests) + len(kb.requests) + len(xp.requests)


def channel_text(slack: SlackFake) -> str:
    return json.dumps(slack.messages_in(CHANNEL))


@pytest.mark.parametrize("who", [DAVE, ROBOT, GHOST])
async def test_command_assign_to_unworkable_user_is_refused_before_any_platform_call(
    who: str,
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """`/triage assign … to @dave|@robot|@ghost` touches no platform and says who and why in one message."""
    seed_unworkable(slack_fake, datadog_fake)
    seed_items(datadog_fake, kibana_fake, xpanse_fake)
    resp = await bot.command(f"assign dd:{FINDING} kibana:secops/a1 xpanse:5471 to <@{who}>")
    assert resp.status_code == 200 and resp.text == "On it: assign 3 items."
    await bot.settle()
    assert platform_calls(datadog_fake, kibana_fake, xpanse_fake) == 0
    assert datadog_fake.findings[FINDING]["assignee_id"] is None
    (post,) = slack_fake.calls_to("chat.postMessage")
    assert post.args["text"].startswith(f"Not assigned: {REASONS[who]}")
    assert "done" not in post.args["text"] and "failed" not in post.args["text"]
    ledger = await bot.svc.jobs.ledger_since(0)
    assert [e.outcome for e in ledger if e.target is None] == ["refused"]
    assert {e.outcome for e in ledger if e.target} == {"failed"} and len([e for e in ledger if e.target]) == 3
    job = await bot.svc.jobs.get(ledger[0].job_id or "")
    assert job is not None and job.state is JobState.FAILED and job.params.refused


async def test_mapping_to_a_deactivated_user_does_not_bypass_the_check(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """Dave's stored Datadog mapping needs no look-up, yet his deactivated account still refuses the job."""
    seed_unworkable(slack_fake, datadog_fake)
    datadog_fake.add_finding(FINDING)
    await bot.svc.mappings.set_many(TEAM, DAVE, {Platform.DATADOG: DD_DAVE}, source=Source.ADMIN, set_by=ALICE)
    await bot.command(f"assign dd:{FINDING} to <@{DAVE}>")
    await bot.settle()
    assert datadog_fake.requests == []
    assert REASONS[DAVE] in channel_text(slack_fake)


async def test_assign_modal_to_a_bot_user_is_refused_in_the_card_thread(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """Picking an app user in the Assign… modal closes the form, writes nothing and says why in the card's thread."""
    seed_unworkable(slack_fake, datadog_fake)
    datadog_fake.add_finding(FINDING)
    ts = await show(bot, f"dd:{FINDING}")
    view = await open_modal(bot, slack_fake, "assign_open", ts)
    datadog_fake.reset_log()
    picked = {"assign_user": {"assign_user": {"type": "users_select", "selected_user": ROBOT}}}
    resp = await bot.submit_view(view, picked)
    assert resp.status_code == 200
    await bot.settle()
    assert datadog_fake.requests == []
    (reply,) = bot.replies(CHANNEL, ts)
    assert reply["text"].startswith(f"Not assigned: {REASONS[ROBOT]}")
    assert f"dd:{FINDING}" in json.dumps(reply["blocks"])


async def test_assign_to_a_person_still_works_after_the_check(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """A real, active person passes the check and is assigned as before."""
    datadog_fake.add_finding(FINDING)
    await bot.command(f"assign dd:{FINDING} to <@{BOB}>")
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_BOB


async def test_handoff_to_a_bot_user_is_refused_in_the_preview(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """`/triage handoff to @robot` lists nothing, offers no Confirm and says Robot is not a person."""
    seed_unworkable(slack_fake, datadog_fake)
    seed_holdings(datadog_fake, kibana_fake, xpanse_fake)
    resp = await bot.command(f"handoff to <@{ROBOT}>")
    assert "Collecting" in resp.text
    await bot.settle(timeout=20)
    assert platform_calls(datadog_fake, kibana_fake, xpanse_fake) == 0
    assert button_message(slack_fake, ActionId.HANDOFF_CONFIRM) is None
    assert f"Not handed off: {REASONS[ROBOT]}" in channel_text(slack_fake)
    assert "refused" in [e.outcome for e in await bot.svc.jobs.ledger_since(0)]


async def test_handoff_receiver_deactivated_after_the_preview_is_refused_at_apply(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """Bob is deactivated between preview and Confirm: nothing is reassigned and the preview's thread says why."""
    seed_holdings(datadog_fake, kibana_fake, xpanse_fake)
    ts = await start_handoff(bot, slack_fake)
    slack_fake.users[BOB].deleted = True
    bot.svc.identity.forget(TEAM, BOB)  # what a user_change event (or the cache's expiry) does
    await bot.click_on_card(ActionId.HANDOFF_CONFIRM, channel=CHANNEL, ts=ts, user=ALICE)
    await bot.settle(timeout=20)
    assert writes(datadog_fake, kibana_fake, xpanse_fake) == (0, 0, 0)
    (reply,) = bot.replies(CHANNEL, ts)
    assert reply["text"].startswith(f"Not handed off: <@{BOB}>'s Slack account is deactivated")
    assert slack_fake.calls_to("conversations.open") == []
    assert button_message(slack_fake, ActionId.RETRY_FAILED) is None


async def test_slack_failing_to_answer_refuses_rather_than_guesses(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """When users.info fails (not user_not_found) nothing is assigned and the actor is told to try again."""
    datadog_fake.add_finding(FINDING)
    await bot.svc.mappings.set_many(TEAM, BOB, {Platform.DATADOG: DD_BOB}, source=Source.ADMIN, set_by=ALICE)
    slack_fake.fail("users.info", "fatal_error", times=None)
    await bot.command(f"assign dd:{FINDING} to <@{BOB}>")
    await bot.settle()
    assert datadog_fake.requests == []
    assert "could not check" in channel_text(slack_fake) and "try again" in channel_text(slack_fake)
