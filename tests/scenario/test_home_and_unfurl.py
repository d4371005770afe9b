"""The App Home (one analyst's open items, published on app_home_opened) and link unfurls
(a pasted Datadog, Kibana or Xpanse link becomes a compact card), through the one door."""

from __future__ import annotations

import json
from typing import Any

from bot.sandbox import payloads
from bot.slack.ids import ActionId, BlockId
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, MakeBot
from tests.scenario.harness import CHANNEL, BotHarness

FINDING = "aG9tZS1maW5kaW5nLTE="
KIBANA_LINK = "https://kibana.example.com/app/security/alerts/redirect/h1?index=.alerts-security.alerts-default"
DATADOG_LINK = f"https://app.datadoghq.com/security/findings?finding_id={FINDING}"


def actions_of(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b.get("type") == "actions" for e in b["elements"]]


async def click_in_home(bot: BotHarness, action_id: str, value: str, *, user: str) -> Any:
    """Click a button on the Home tab: a block_actions payload from a view, with no channel."""
    body = payloads.block_actions(
        action=payloads.button(action_id, value, ts="1700000001.000001"),
        user_id=user,
        team_id="T111",
        channel_id=CHANNEL,
        message={"ts": "1700000000.000001", "type": "message", "blocks": []},
        message_ts="1700000000.000001",
        response_url=bot.slack.webhook_url("home"),
        trigger_id="trigger.home",
    )
    for key in ("channel", "message", "response_url"):
        body.pop(key, None)
    body["container"] = {"type": "view", "view_id": f"VHOME{user}"}
    body["view"] = {"id": f"VHOME{user}", "type": "home", "blocks": []}
    return await bot.interactive(body)


async def open_home(bot: BotHarness, user: str, tab: str = "home") -> None:
    resp = await bot.event(payloads.app_home_opened(user_id=user, tab=tab))
    assert resp.status_code == 200
    await bot.settle()


async def test_home_lists_the_users_open_items_by_platform_with_their_buttons(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake, xpanse_fake: XpanseFake
) -> None:
    """Opening the Home tab publishes the user's open items per platform, each with Assign…, Resolve… and Open."""
    kibana_fake.add_alert("h1", rule_name="Beaconing host", severity="high")
    xpanse_fake.add_incident("8001", description="Open RDP", severity="low")
    await bot.command(f"assign kibana:h1 xpanse:8001 to <@{ALICE}|alice>", user=ALICE)
    await bot.settle()
    await open_home(bot, ALICE)
    home = slack_fake.homes[ALICE]
    text = json.dumps(home["blocks"])
    assert "Beaconing host" in text and "kibana:default/h1" in text and "xpanse:8001" in text
    assert "Severity: *high*" in text and "Severity: *low*" in text
    ids = actions_of(home["blocks"])
    assert ids[0] == ActionId.HOME_REFRESH.value
    assert ids.count(ActionId.ASSIGN_OPEN.value) == 2 and ids.count(ActionId.RESOLVE_OPEN.value) == 2
    assert ActionId.OPEN_LINK.value in ids
    assert "No pending handoffs" in text


async def test_home_shows_a_pending_handoff(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """A handoff preview waiting for Confirm is on the Home of the person handing off."""
    kibana_fake.add_alert("h2")
    await bot.command(f"assign kibana:h2 to <@{ALICE}|alice>", user=ALICE)
    await bot.settle()
    await bot.command(f"handoff to <@{BOB}|bob>", user=ALICE)
    await bot.settle()
    await open_home(bot, ALICE)
    text = json.dumps(slack_fake.homes[ALICE]["blocks"])
    assert "Pending handoffs" in text and f"<@{BOB}>" in text


async def test_the_messages_tab_publishes_nothing(bot: BotHarness, slack_fake: SlackFake) -> None:
    """app_home_opened for the Messages tab leaves the Home alone."""
    await open_home(bot, ALICE, tab="messages")
    assert not slack_fake.calls_to("views.publish")


async def test_refresh_on_the_home_publishes_it_again(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """The Home's Refresh button republishes the Home with what changed since."""
    await open_home(bot, ALICE)
    assert "nothing open" in json.dumps(slack_fake.homes[ALICE]["blocks"])
    kibana_fake.add_alert("h3", rule_name="Late arrival")
    await bot.command(f"assign kibana:h3 to <@{ALICE}|alice>", user=ALICE)
    await bot.settle()
    resp = await click_in_home(bot, ActionId.HOME_REFRESH.value, ALICE, user=ALICE)
    assert resp.status_code == 200
    await bot.settle()
    assert len(slack_fake.calls_to("views.publish")) == 2
    assert "Late arrival" in json.dumps(slack_fake.homes[ALICE]["blocks"])


async def test_a_pasted_link_unfurls_as_a_compact_card(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake, datadog_fake: DatadogFake
) -> None:
    """A Kibana and a Datadog link pasted by a person are unfurled with title, severity, status,
    assignee and the card's buttons."""
    kibana_fake.add_alert("h1", rule_name="Beaconing host", severity="high")
    datadog_fake.add_finding(FINDING, title="Public bucket")
    event = payloads.link_shared(
        user_id=ALICE, channel=CHANNEL, message_ts="1700000005.000100", urls=[KIBANA_LINK, DATADOG_LINK]
    )
    resp = await bot.event(event)
    assert resp.status_code == 200
    await bot.settle()
    (call,) = slack_fake.unfurls
    assert call["channel"] == CHANNEL and call["ts"] == "1700000005.000100"
    kibana = json.dumps(call["unfurls"][KIBANA_LINK]["blocks"])
    assert "Beaconing host" in kibana and "high" in kibana and "*Status*" in kibana and "_unassigned_" in kibana
    assert ActionId.ASSIGN_ME.value in actions_of(call["unfurls"][KIBANA_LINK]["blocks"])
    assert "Public bucket" in json.dumps(call["unfurls"][DATADOG_LINK]["blocks"])
    assert await bot.svc.jobs.unfinished() == []  # an unfurl is a read, not a job


async def test_links_outside_the_unfurl_domains_are_left_alone(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """Only hosts in TRIAGE_UNFURL_DOMAINS are unfurled; any other link is ignored."""
    bot = await make_bot(triage_unfurl_domains="kibana.internal.example")
    event = payloads.link_shared(user_id=ALICE, channel=CHANNEL, message_ts="1700000006.000100", urls=[KIBANA_LINK])
    await bot.event(event)
    await bot.settle()
    assert not slack_fake.calls_to("chat.unfurl")


async def test_resolve_on_the_home_opens_the_resolve_form(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """The Home's Resolve… opens the card's resolve modal; its result goes to the actor's DM with the bot."""
    kibana_fake.add_alert("h4", rule_name="From home")
    await bot.command(f"assign kibana:h4 to <@{ALICE}|alice>", user=ALICE)
    await bot.settle()
    await open_home(bot, ALICE)
    value = next(
        e["value"]
        for b in slack_fake.homes[ALICE]["blocks"]
        if b.get("type") == "actions"
        for e in b["elements"]
        if e["action_id"] == ActionId.RESOLVE_OPEN.value
    )
    resp = await click_in_home(bot, ActionId.RESOLVE_OPEN.value, value, user=ALICE)
    assert resp.status_code == 200
    await bot.settle()
    (opened,) = slack_fake.calls_to("views.open")
    assert "kibana:default/h4" in json.dumps(opened.args)
    view = json.loads(opened.args["view"]) if isinstance(opened.args["view"], str) else opened.args["view"]
    values = {
        BlockId.RESOLVE_REASON.value: {
            ActionId.RESOLVE_REASON.value: {"type": "static_select", "selected_option": {"value": "false_positive"}}
        }
    }
    await bot.submit_view(view, values, user=ALICE)
    await bot.settle()
    assert kibana_fake.status("h4") == "closed"
    dm = slack_fake.dm_channels.get(ALICE) or ""
    assert "resolved 1 item" in json.dumps(slack_fake.messages_in(dm))  # the result reaches the actor's DM
