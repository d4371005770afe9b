"""At most once in effect: double clicks, two people on one card, repeated deliveries."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

from bot.slack.ids import ActionId
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.scenario.conftest import ALICE, BOB, DD_ALICE, DD_BOB, KB_ALICE
from tests.scenario.harness import CHANNEL, BotHarness
from tests.sql import run_sql

FINDING = "ZGVmLTAwcC1jb25jdXJyZW5jeS0wMDAwMDAwMDAx"


async def post_card(bot: BotHarness, platform: str, alert: dict[str, Any]) -> str:
    """Ingest one alert through the webhook; returns the ts of the card the bot posted."""
    resp = await bot.http.post(
        f"{bot.url}/alerts/{platform}", json=alert, headers={"Authorization": "Bearer hook-token-123456"}
    )
    assert resp.status_code == 202, resp.text
    (accepted,) = resp.json()["accepted"]
    await bot.posted()
    carded = await bot.svc.intake.in_status(accepted["channel"], "carded")
    return next(str(a.card_ts) for a in carded if a.target.id == accepted["id"])


def assignee_writes(datadog: DatadogFake) -> int:
    return len(datadog.calls("/api/v2/security/findings/assignee", method="PATCH"))


def ephemeral_texts(slack: SlackFake) -> list[str]:
    return [str(r.get("text", "")) for r in slack.responses]


async def test_double_click_by_one_user_writes_once(
    bot: BotHarness, datadog_fake: DatadogFake, slack_fake: SlackFake
) -> None:
    """Two "Assign me" clicks by the same person at once: one Datadog write, the second told it is in hand."""
    datadog_fake.add_finding(FINDING, title="Open port")
    ts = await post_card(bot, "datadog", {"id": FINDING, "title": "Open port", "severity": "high"})
    first, second = await asyncio.gather(
        bot.click_on_card(ActionId.ASSIGN_ME, channel=CHANNEL, ts=ts, user=ALICE),
        bot.click_on_card(ActionId.ASSIGN_ME, channel=CHANNEL, ts=ts, user=ALICE),
    )
    assert first.status_code == second.status_code == 200
    await bot.settle()
    assert assignee_writes(datadog_fake) == 1
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE
    told = [t for t in ephemeral_texts(slack_fake) if "already" in t]
    assert len(told) == 1, slack_fake.responses
    assert f"<@{ALICE}>" in told[0]


async def test_two_people_click_assign_me_first_wins(
    bot: BotHarness, datadog_fake: DatadogFake, slack_fake: SlackFake
) -> None:
    """Alice and Bob click "Assign me" together: exactly one write; the loser learns who got it, by whom."""
    datadog_fake.add_finding(FINDING, title="Open port")
    ts = await post_card(bot, "datadog", {"id": FINDING, "title": "Open port"})
    await asyncio.gather(
        bot.click_on_card(ActionId.ASSIGN_ME, channel=CHANNEL, ts=ts, user=ALICE),
        bot.click_on_card(ActionId.ASSIGN_ME, channel=CHANNEL, ts=ts, user=BOB),
    )
    await bot.settle()
    assert assignee_writes(datadog_fake) == 1
    holder = datadog_fake.findings[FINDING]["assignee_id"]
    assert holder in (DD_ALICE, DD_BOB)
    told = [t for t in ephemeral_texts(slack_fake) if "already" in t]
    assert len(told) == 1, slack_fake.responses
    winner = ALICE if holder == DD_ALICE else BOB
    assert f"<@{winner}>" in told[0]


async def test_click_after_the_change_reports_already_done_with_age(
    bot: BotHarness, datadog_fake: DatadogFake, slack_fake: SlackFake
) -> None:
    """A second click after the job finished is answered "already assigned to @x by @y N s ago" and not written."""
    datadog_fake.add_finding(FINDING, title="Open port")
    ts = await post_card(bot, "datadog", {"id": FINDING, "title": "Open port"})
    await bot.click_on_card(ActionId.ASSIGN_ME, channel=CHANNEL, ts=ts, user=ALICE)
    await bot.settle()
    await bot.click_on_card(ActionId.ASSIGN_ME, channel=CHANNEL, ts=ts, user=BOB)
    await bot.settle()
    assert assignee_writes(datadog_fake) == 1
    told = [t for t in ephemeral_texts(slack_fake) if "already" in t]
    assert told and f"already assigned to <@{ALICE}> by <@{ALICE}>" in told[-1], told
    assert " s ago" in told[-1]


async def test_repeated_delivery_of_one_interaction_runs_once_silently(
    bot: BotHarness, datadog_fake: DatadogFake, slack_fake: SlackFake
) -> None:
    """Slack redelivering the very same click (same action_ts) makes one job, one write, and no complaint."""
    datadog_fake.add_finding(FINDING, title="Open port")
    ts = await post_card(bot, "datadog", {"id": FINDING, "title": "Open port"})
    message = slack_fake.message(CHANNEL, ts)
    assert message is not None
    value = next(
        e["value"] for b in message["blocks"] for e in b.get("elements", []) if e.get("action_id") == ActionId.ASSIGN_ME
    )
    body = {
        "type": "block_actions",
        "team": {"id": "T111"},
        "user": {"id": ALICE, "team_id": "T111"},
        "api_app_id": "A1",
        "token": "x",
        "trigger_id": "t.1",
        "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL, "is_ephemeral": False},
        "channel": {"id": CHANNEL},
        "message": message,
        "response_url": slack_fake.webhook_url("redeliver"),
        "actions": [
            {
                "action_id": ActionId.ASSIGN_ME.value,
                "block_id": "b",
                "value": value,
                "type": "button",
                "action_ts": "1700000000.000001",
            }
        ],
    }
    raw = "payload=" + urllib.parse.quote(json.dumps(body))
    await asyncio.gather(bot.post_raw(raw), bot.post_raw(raw))
    await bot.settle()
    await bot.post_raw(raw)
    await bot.settle()
    assert assignee_writes(datadog_fake) == 1
    jobs = await bot.svc.jobs.ledger_since(0)
    assert [e.outcome for e in jobs if e.verb == "assign"] == ["done"]
    assert not [t for t in ephemeral_texts(slack_fake) if "already" in t]


async def test_change_in_platform_ui_since_card_is_noted_and_card_redrawn(
    bot: BotHarness, kibana_fake: KibanaFake, slack_fake: SlackFake
) -> None:
    """Someone reassigned the alert in Kibana after the bot did: the reply says so and the card shows the new state."""
    kibana_fake.add_alert("k1", rule_name="Brute force")
    ts = await post_card(bot, "kibana", {"id": "k1", "title": "Brute force"})
    await bot.click_on_card(ActionId.ASSIGN_ME, channel=CHANNEL, ts=ts, user=ALICE)
    await bot.settle()
    assert kibana_fake.assignees("k1") == [KB_ALICE]
    # Changed in Kibana's own UI: the bot's card still shows Alice.
    kibana_fake.alerts["default"]["k1"]["kibana.alert.workflow_assignee_ids"] = ["u_mallory_0"]
    await asyncio.sleep(0)
    await run_sql(bot.svc.jobs.store, "UPDATE ledger SET at = at - 120")  # out of the duplicate window
    await bot.click_on_card(ActionId.UNASSIGN, channel=CHANNEL, ts=ts, user=BOB)
    await bot.settle()
    reply = slack_fake.calls_to("chat.postMessage")[-1]
    assert "changed in Kibana since the bot last set it" in json.dumps(reply.args["blocks"])
    assert "u_mallory_0" in json.dumps(reply.args["blocks"])
    card = slack_fake.message(CHANNEL, ts)
    assert card is not None and f"<@{ALICE}>" not in json.dumps(card["blocks"])
    assert kibana_fake.assignees("k1") == []
