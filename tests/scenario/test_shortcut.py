"""The "Triage this" message shortcut: a card per alert the message names, in its thread."""

from __future__ import annotations

from typing import Any

from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import MakeBot
from tests.scenario.harness import CHANNEL, BotHarness

FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="


async def human_message(slack: SlackFake, text: str, *, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A message someone posted in the channel (stored by the fake, so cards can thread under it)."""
    async with slack.client() as client:
        resp = await client.chat_postMessage(channel=CHANNEL, text=text, blocks=blocks)
    message = slack.message(CHANNEL, resp["ts"])
    assert message is not None
    # A person's message, not the bot's: drop the bot markers the fake stamped on it.
    return {k: v for k, v in message.items() if k not in ("subtype", "bot_id")} | {"user": "U0BOB"}


async def test_shortcut_posts_a_card_per_target_in_the_thread(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """Links and ids of all three platforms in one message become three cards in its thread."""
    datadog_fake.add_finding(FINDING, title="Public S3 bucket")
    kibana_fake.add_alert("k1", space="secops", rule_name="Brute force")
    xpanse_fake.add_incident("5471", description="Exposed RDP")
    message = await human_message(
        slack_fake,
        (
            f"Seen <https://app.datadoghq.com/security/findings/{FINDING}|this finding>, "
            "and https://kibana.example.com/s/secops/app/security/alerts/redirect/k1 "
            "plus xpanse:5471 — can someone look?"
        ),
    )
    slack_fake.calls.clear()
    resp = await bot.shortcut(message)
    assert resp.status_code == 200 and resp.text == ""
    await bot.settle()
    cards = bot.replies(CHANNEL, message["ts"])
    assert len(cards) == 3
    texts = " ".join(c["text"] for c in cards)
    for expected in ("Public S3 bucket", "Brute force", "Exposed RDP", "kibana:secops/k1", "xpanse:5471"):
        assert expected in texts
    assert all(c["ts"] in {m["ts"] for m in bot.cards()} for c in cards)  # real cards, with buttons
    assert slack_fake.responses == []


async def test_shortcut_reads_ids_in_blocks(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """An id that appears only in the message's blocks (e.g. an alert bot's attachment text) is found."""
    kibana_fake.add_alert("k7", rule_name="Ransomware note")
    message = await human_message(
        slack_fake,
        "new alert",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "Alert `kibana:k7` fired"}}],
    )
    await bot.shortcut(message)
    await bot.settle()
    (card,) = bot.replies(CHANNEL, message["ts"])
    assert "Ransomware note" in card["text"]


async def test_shortcut_on_a_message_without_alerts_says_so(bot: BotHarness, slack_fake: SlackFake) -> None:
    """A message naming no alert gets an ephemeral "found none" through the response_url, and nothing is posted."""
    message = await human_message(slack_fake, "lunch at noon?")
    posted = len(slack_fake.calls_to("chat.postMessage"))
    resp = await bot.shortcut(message)
    assert resp.status_code == 200
    (body,) = await slack_fake.wait_for_responses(1)
    assert body["response_type"] == "ephemeral"
    assert body["text"].startswith("I found no Datadog, Kibana or Xpanse alert in that message")
    await bot.settle()
    assert len(slack_fake.calls_to("chat.postMessage")) == posted


async def test_shortcut_reports_a_missing_alert_in_its_card(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """A target the platform does not hold becomes a "not found" card, the others real cards."""
    xpanse_fake.add_incident("5471")
    message = await human_message(slack_fake, "xpanse:5471 and xpanse:9999")
    await bot.shortcut(message)
    await bot.settle()
    replies = bot.replies(CHANNEL, message["ts"])
    assert len(replies) == 2
    missing = next(r for r in replies if "9999" in r["text"])
    assert "does not hold" in missing["text"] or "not found" in missing["text"]


async def test_shortcut_for_an_unconfigured_platform(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """A message naming only Kibana alerts, with Kibana unconfigured, answers so ephemerally."""
    bot = await make_bot(kibana=False)
    message = await human_message(slack_fake, "kibana:k1 again")
    await bot.shortcut(message)
    (body,) = await slack_fake.wait_for_responses(1)
    assert body["response_type"] == "ephemeral"
    assert "Kibana is not configured" in body["text"]
    await bot.settle()
    assert bot.replies(CHANNEL, message["ts"]) == []


async def test_shortcut_with_too_many_alerts_says_which_were_left_out(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """A message naming 22 incidents gets 20 cards, and the actor is told which 2 got none."""
    for n in range(22):
        xpanse_fake.add_incident(str(6000 + n))
    message = await human_message(slack_fake, " ".join(f"xpanse:{6000 + n}" for n in range(22)))
    await bot.shortcut(message)
    await bot.settle()
    assert len(bot.replies(CHANNEL, message["ts"])) == 20
    (body,) = await slack_fake.wait_for_responses(1)
    assert body["response_type"] == "ephemeral"
    assert "22 alerts" in body["text"] and "`xpanse:6020` `xpanse:6021`" in body["text"]
