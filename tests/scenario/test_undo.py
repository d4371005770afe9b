"""Undo on a write's result: it puts back what the write changed, at most once, only for its
actor or an admin, refuses items that changed since, and leaves the message after its window."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bot.slack.ids import ActionId
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, CAROL, KB_ALICE, KB_BOB, MakeBot
from tests.scenario.harness import CHANNEL, BotHarness

FINDING = "dW5kby1maW5kaW5nLTE="


def undo_buttons(slack: SlackFake) -> list[tuple[str, str]]:
    """(message ts, button value) of every Undo button the bot's messages in CHANNEL show now."""
    found = []
    for message in slack.messages_in(CHANNEL):
        for block in message.get("blocks") or []:
            for element in block.get("elements") or [] if block.get("type") == "actions" else []:
                if element.get("action_id") == ActionId.UNDO.value:
                    found.append((message["ts"], element["value"]))
    return found


async def press_undo(bot: BotHarness, slack: SlackFake, *, user: str = ALICE) -> None:
    ((ts, value),) = undo_buttons(slack)
    resp = await bot.click(ActionId.UNDO.value, value, user=user, message_ts=ts)
    assert resp.status_code == 200
    await bot.settle()


def last_reply(slack: SlackFake) -> str:
    return json.dumps(slack.messages_in(CHANNEL)[-1]) + json.dumps(slack.responses[-1:] or "")


async def test_undo_puts_back_the_previous_assignee(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """Undo after an assign gives the alert back to whoever had it, in the ledger, and the button gives way."""
    kibana_fake.add_alert("u1", assignees=[KB_BOB])
    await bot.command("assign kibana:u1 to me", user=ALICE)
    await bot.settle()
    assert kibana_fake.assignees("u1") == [KB_ALICE]
    await press_undo(bot, slack_fake)
    assert kibana_fake.assignees("u1") == [KB_BOB]
    assert not undo_buttons(slack_fake)
    assert "Undone by" in json.dumps(slack_fake.messages_in(CHANNEL))
    verbs = [(e.verb, e.outcome) for e in await bot.svc.jobs.ledger_since(0)]
    assert ("undo", "done") in verbs


async def test_undo_refuses_an_item_that_changed_since(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """When someone changed the alert after the write, Undo leaves it and says what it is now."""
    kibana_fake.add_alert("u2", assignees=[KB_BOB])
    await bot.command("assign kibana:u2 to me", user=ALICE)
    await bot.settle()
    kibana_fake.alerts["default"]["u2"]["kibana.alert.workflow_assignee_ids"] = ["u_someone_else"]
    await press_undo(bot, slack_fake)
    assert kibana_fake.assignees("u2") == ["u_someone_else"]
    text = json.dumps(slack_fake.messages_in(CHANNEL))
    assert "not undone" in text and "u_someone_else" in text


async def test_only_the_actor_or_an_admin_may_undo(
    make_bot: MakeBot, tmp_path: Path, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """Another user's Undo is refused with who may; an admin's Undo goes through."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"admins:\n  users: [{CAROL}]\n")
    bot = await make_bot(triage_policy=str(policy))
    kibana_fake.add_alert("u3", assignees=[KB_BOB])
    await bot.command("assign kibana:u3 to me", user=ALICE)
    await bot.settle()
    await press_undo(bot, slack_fake, user=BOB)
    assert kibana_fake.assignees("u3") == [KB_ALICE]
    assert f"Only <@{ALICE}>" in json.dumps(slack_fake.responses[-1])
    await press_undo(bot, slack_fake, user=CAROL)
    assert kibana_fake.assignees("u3") == [KB_BOB]


async def test_undo_happens_at_most_once(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """A second press of the same Undo is refused: the write is put back once only."""
    kibana_fake.add_alert("u4", assignees=[KB_BOB])
    await bot.command("assign kibana:u4 to me", user=ALICE)
    await bot.settle()
    ((ts, value),) = undo_buttons(slack_fake)
    await bot.click(ActionId.UNDO.value, value, user=ALICE, message_ts=ts)
    await bot.settle()
    await bot.click(ActionId.UNDO.value, value, user=ALICE, message_ts=ts)
    await bot.settle()
    assert "already undid" in json.dumps(slack_fake.responses[-1])
    undos = [e for e in await bot.svc.jobs.ledger_since(0) if e.verb == "undo" and e.outcome == "done"]
    assert len(undos) == 1


async def test_undo_reopens_a_resolved_incident_and_restores_a_severity(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """Undo after resolve reopens the Xpanse incident; undo after severity puts the old one back."""
    xpanse_fake.add_incident("9001", severity="high")
    await bot.command("resolve xpanse:9001", user=ALICE)
    await bot.settle()
    assert xpanse_fake.incidents["9001"].status.startswith("resolved")
    await press_undo(bot, slack_fake)
    assert not xpanse_fake.incidents["9001"].status.startswith("resolved")
    await bot.command("severity xpanse:9001 low", user=ALICE)
    await bot.settle()
    assert xpanse_fake.incidents["9001"].manual_severity == "low"
    await press_undo(bot, slack_fake)
    assert xpanse_fake.incidents["9001"].manual_severity == "high"


async def test_undo_unmutes_a_muted_finding(bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake) -> None:
    """Undo after a Datadog mute unmutes the finding."""
    datadog_fake.add_finding(FINDING)
    await bot.command(f"resolve dd:{FINDING} reason other for 30d", user=ALICE)
    await bot.settle()
    assert datadog_fake.findings[FINDING]["mute"]["is_muted"] is True
    await press_undo(bot, slack_fake)
    assert datadog_fake.findings[FINDING]["mute"]["is_muted"] is False


async def test_the_button_comes_off_after_the_window(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """After TRIAGE_UNDO_SECONDS the sweeper edits the button away, and a late press is refused."""
    kibana_fake.add_alert("u5", assignees=[KB_BOB])
    await bot.command("assign kibana:u5 to me", user=ALICE)
    await bot.settle()
    ((ts, value),) = undo_buttons(slack_fake)
    assert await bot.svc.undo_sweeper.run_once(time.time()) == 0  # still inside the window
    assert await bot.svc.undo_sweeper.run_once(time.time() + 31) == 1
    assert not undo_buttons(slack_fake)
    message: Any = slack_fake.message(CHANNEL, ts)
    assert "is over" in json.dumps(message["blocks"])
    await bot.click(ActionId.UNDO.value, value, user=ALICE, message_ts=ts)
    await bot.settle()
    assert "over" in json.dumps(slack_fake.responses[-1])
    assert kibana_fake.assignees("u5") == [KB_ALICE]
