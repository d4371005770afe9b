"""The digest's bulk actions: ordinary requests through the one door, as `/triage assign` with many ids."""

from __future__ import annotations

import json
from typing import Any

from bot.sandbox.storm import represented
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import BOB, KB_ALICE, KB_BOB, MakeBot
from tests.scenario.harness import CHANNEL, BotHarness
from tests.scenario.test_ingest import post_alert

KIBANA = ["k-1", "k-2", "k-3"]
XPANSE = ["501", "502"]


async def storm(make_bot: MakeBot, kibana: KibanaFake, xpanse: XpanseFake) -> tuple[BotHarness, dict[str, Any]]:
    """Five alerts with TRIAGE_DIGEST_AFTER=2: one digest; returns the bot and the digest message."""
    for alert in KIBANA:
        kibana.add_alert(alert)
    for incident in XPANSE:
        xpanse.add_incident(incident)
    bot = await make_bot(triage_digest_after=2)
    bot.svc.poster.interval = 0.3  # the first alert is not carded before the rest arrive
    await post_alert(bot, "kibana", [{"id": a, "title": f"Alert {a}"} for a in KIBANA])
    await post_alert(bot, "xpanse", [{"incident_id": i, "description": f"Incident {i}"} for i in XPANSE])
    await bot.posted()
    digests = [m for m in bot.slack.messages_in(CHANNEL) if any(b["type"] == "table" for b in m["blocks"])]
    assert len(digests) == 1
    assert (
        represented(bot.slack, [CHANNEL]).lost([f"kibana:{a}" for a in KIBANA] + [f"xpanse:{i}" for i in XPANSE]) == []
    )
    return bot, digests[0]


def button_value(message: dict[str, Any], action_id: str) -> str:
    for block in message["blocks"]:
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            if element["action_id"] == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id}")


async def test_assign_all_to_me_assigns_every_listed_alert(
    make_bot: MakeBot, slack_fake: SlackFake, kibana_fake: KibanaFake, xpanse_fake: XpanseFake
) -> None:
    """ "Assign all to me" on a digest assigns all five alerts to the clicker, as one job."""
    bot, digest = await storm(make_bot, kibana_fake, xpanse_fake)
    resp = await bot.click("digest_assign_me", button_value(digest, "digest_assign_me"), message_ts=digest["ts"])
    assert resp.status_code == 200
    await bot.settle()
    assert all(kibana_fake.assignees(a) == [KB_ALICE] for a in KIBANA)
    assert {xpanse_fake.incidents[i].assigned_user_mail for i in XPANSE} == {"alice@example.com"}
    # One summary in the channel, as `/triage assign` with many ids reports.
    summaries = [m for m in slack_fake.messages_in(CHANNEL) if "assigned 5 items" in m.get("text", "").lower()]
    assert summaries, [m.get("text") for m in slack_fake.messages_in(CHANNEL)]


async def test_assign_all_modal_assigns_to_the_chosen_person(
    make_bot: MakeBot, slack_fake: SlackFake, kibana_fake: KibanaFake, xpanse_fake: XpanseFake
) -> None:
    """ "Assign all…" opens a user picker; submitting it assigns every listed alert to that person."""
    bot, digest = await storm(make_bot, kibana_fake, xpanse_fake)
    await bot.click("digest_assign_open", button_value(digest, "digest_assign_open"), message_ts=digest["ts"])
    (opened,) = await slack_fake.wait_for("views.open")
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    await bot.submit_view(view, {"assign_user": {"assign_user": {"type": "users_select", "selected_user": BOB}}})
    await bot.settle()
    assert all(kibana_fake.assignees(a) == [KB_BOB] for a in KIBANA)
    assert {xpanse_fake.incidents[i].assigned_user_mail for i in XPANSE} == {"bob@example.com"}


async def test_resolve_all_closes_each_platform_with_its_reason(
    make_bot: MakeBot, slack_fake: SlackFake, kibana_fake: KibanaFake, xpanse_fake: XpanseFake
) -> None:
    """ "Resolve all…" asks a reason per platform and resolves the Kibana and Xpanse alerts."""
    bot, digest = await storm(make_bot, kibana_fake, xpanse_fake)
    await bot.click("digest_resolve_open", button_value(digest, "digest_resolve_open"), message_ts=digest["ts"])
    (opened,) = await slack_fake.wait_for("views.open")
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    values = {
        "digest_reason_kibana": {
            "resolve_reason": {"type": "static_select", "selected_option": {"value": "false_positive"}}
        },
        "digest_reason_xpanse": {
            "resolve_reason": {"type": "static_select", "selected_option": {"value": "resolved_-_no_risk"}}
        },
    }
    await bot.submit_view(view, values)
    await bot.settle()
    assert {kibana_fake.status(a) for a in KIBANA} == {"closed"}
    assert {xpanse_fake.incidents[i].status for i in XPANSE} == {"resolved_-_no_risk"}


async def test_show_cards_posts_the_chosen_rows_in_the_digest_thread(
    make_bot: MakeBot, slack_fake: SlackFake, kibana_fake: KibanaFake, xpanse_fake: XpanseFake
) -> None:
    """ "Show cards" offers the digest's rows; the chosen ones become cards in the digest's thread."""
    bot, digest = await storm(make_bot, kibana_fake, xpanse_fake)
    await bot.click("digest_show_open", button_value(digest, "digest_show_open"), message_ts=digest["ts"])
    (opened,) = await slack_fake.wait_for("views.open")
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    (picker,) = [b for b in view["blocks"] if b.get("block_id") == "digest_rows"]
    options = picker["element"]["options"]
    assert len(options) == 5
    chosen = [o for o in options if "k-2" in o["text"]["text"] or "502" in o["text"]["text"]]
    await bot.submit_view(
        view, {"digest_rows": {"digest_rows": {"type": "multi_static_select", "selected_options": chosen}}}
    )
    await bot.settle()
    cards = [m for m in bot.replies(CHANNEL, digest["ts"]) if m in bot.cards(CHANNEL)]
    texts = " ".join(c["text"] for c in cards)
    assert len(cards) == 2 and "k-2" in texts and "502" in texts
