"""Modals at their edges: what each form offers, bad input kept in the form, and failures reported."""

from __future__ import annotations

from typing import Any

from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import BOB, DD_BOB
from tests.scenario.harness import CHANNEL, BotHarness
from tests.scenario.test_cards import open_modal, show

FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="


def inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The modal's input blocks by block_id."""
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


async def test_resolve_modal_offers_each_platforms_reasons(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake, xpanse_fake: XpanseFake
) -> None:
    """Kibana's modal offers Kibana's close reasons (optional); Xpanse's its resolved_* statuses (required)."""
    kibana_fake.add_alert("k1")
    xpanse_fake.add_incident("5471")
    kibana_view = await open_modal(bot, slack_fake, "resolve_open", await show(bot, "kibana:k1"))
    xpanse_view = await open_modal(bot, slack_fake, "resolve_open", await show(bot, "xpanse:5471"))
    k_reason = inputs(kibana_view)["resolve_reason"]
    x_reason = inputs(xpanse_view)["resolve_reason"]
    assert k_reason["optional"] is True and x_reason["optional"] is False
    assert "false_positive" in [o["value"] for o in k_reason["element"]["options"]]
    assert all(o["value"].startswith("resolved") for o in x_reason["element"]["options"])
    assert x_reason["element"]["initial_option"]["value"] == "resolved"
    assert kibana_view["title"]["text"] == "Close alerts" and xpanse_view["title"]["text"] == "Resolve incidents"


async def test_kibana_resolve_without_a_reason(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """Submitting the Kibana form with no reason and no comment closes the alert without a reason."""
    kibana_fake.add_alert("k2")
    ts = await show(bot, "kibana:k2")
    view = await open_modal(bot, slack_fake, "resolve_open", ts)
    await bot.submit_view(
        view,
        {
            "resolve_reason": {"resolve_reason": {"type": "static_select", "selected_option": None}},
            "resolve_comment": {"resolve_comment": {"type": "plain_text_input", "value": None}},
        },
    )
    await bot.settle()
    assert kibana_fake.status("k2") == "closed"
    (write,) = kibana_fake.writes()
    assert "reason" not in write.body


async def test_attach_modal_with_an_empty_case_stays_open(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """An empty case field is answered with an error on that field and nothing is queued."""
    datadog_fake.add_finding(FINDING)
    view = await open_modal(bot, slack_fake, "attach_open", await show(bot, f"dd:{FINDING}"))
    datadog_fake.reset_log()
    resp = await bot.submit_view(view, {"attach_case": {"attach_case": {"type": "plain_text_input", "value": "   "}}})
    assert resp.json() == {"response_action": "errors", "errors": {"attach_case": "Give a case key or id"}}
    await bot.settle()
    assert datadog_fake.requests == []


async def test_attach_modal_with_an_unknown_case_reports_datadogs_reason(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """A case key Datadog does not know fails the item in the card's thread with Datadog's reason."""
    datadog_fake.add_finding(FINDING)
    ts = await show(bot, f"dd:{FINDING}")
    view = await open_modal(bot, slack_fake, "attach_open", ts)
    resp = await bot.submit_view(
        view, {"attach_case": {"attach_case": {"type": "plain_text_input", "value": "SEC-404"}}}
    )
    assert resp.text == ""  # the form closes; the outcome goes to the thread
    await bot.settle()
    (reply,) = bot.replies(CHANNEL, ts)
    assert "1 failed" in reply["text"]
    assert "SEC-404" in str(reply["blocks"]) and "Traceback" not in str(reply["blocks"])
    assert datadog_fake.findings[FINDING]["case_id"] is None


async def test_repeating_an_assignment_in_a_modal_is_answered_in_the_form(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """Assigning Bob again right after he was assigned keeps the form open saying it is already done."""
    datadog_fake.add_finding(FINDING)
    ts = await show(bot, f"dd:{FINDING}")
    picked = {"assign_user": {"assign_user": {"type": "users_select", "selected_user": BOB}}}
    await bot.submit_view(await open_modal(bot, slack_fake, "assign_open", ts), picked)
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_BOB
    writes = len(datadog_fake.calls("/findings/assignee"))
    resp = await bot.submit_view(await open_modal(bot, slack_fake, "assign_open", ts), picked)
    body = resp.json()
    assert body["response_action"] == "errors"
    assert "already assigned" in body["errors"]["assign_user"]
    await bot.settle()
    assert len(datadog_fake.calls("/findings/assignee")) == writes


async def test_views_open_failure_tells_the_clicker(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """If Slack refuses to open the form (an expired trigger), the clicker is told ephemerally to retry."""
    xpanse_fake.add_incident("5471")
    ts = await show(bot, "xpanse:5471")
    slack_fake.fail("views.open", "expired_trigger_id")
    await bot.click_on_card("assign_open", channel=CHANNEL, ts=ts)
    (body,) = await slack_fake.wait_for_responses(1)
    assert body["response_type"] == "ephemeral"
    assert "expired_trigger_id" in body["text"] and "try again" in body["text"]
