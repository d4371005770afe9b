"""Alert ingestion: POST /alerts/{platform} is stored and answered 202, then carded in the routed channel."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.scenario.conftest import BOB, KB_BOB, MakeBot
from tests.scenario.harness import CHANNEL, BotHarness

TOKEN = "hook-token-123456"  # the harness's TRIAGE_WEBHOOK_TOKEN
SECRET = "hook-secret-abcdef"
FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="


async def post_alert(
    bot: BotHarness, platform: str, body: Any, *, token: str | None = TOKEN, headers: dict[str, str] | None = None
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return await bot.http.post(f"{bot.url}/alerts/{platform}", content=raw, headers=sent)


def card_refs(message: dict[str, Any]) -> list[str]:
    return [e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


async def test_bearer_token_posts_a_card_in_the_default_channel(bot: BotHarness, slack_fake: SlackFake) -> None:
    """A Datadog alert with the bearer token is accepted 202 and becomes a card in TRIAGE_ALERT_CHANNEL."""
    resp = await post_alert(
        bot,
        "datadog",
        {
            "id": FINDING,
            "title": "Public S3 bucket",
            "severity": "high",
            "link": f"https://app.datadoghq.com/security/findings/{FINDING}",
        },
    )
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": [{"id": FINDING, "channel": CHANNEL, "outcome": "queued"}]}
    await bot.posted()
    (card,) = bot.cards(CHANNEL)
    assert "Datadog: Public S3 bucket" in card["text"]
    assert any(e.get("url", "").endswith(FINDING) for b in card["blocks"] for e in [b.get("accessory") or {}])


async def test_hmac_signature_and_kibana_space(
    make_bot: MakeBot, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """A signed Kibana alert in its rule's own field names lands with its space, and its buttons act there."""
    bot = await make_bot(triage_webhook_secret=SECRET)
    kibana_fake.add_alert("k-9", space="secops", rule_name="Brute force")
    raw = json.dumps(
        {
            "_id": "k-9",
            "kibana": {"alert": {"rule": {"name": "Brute force"}, "severity": "high"}},
            "kibana.space_ids": ["secops"],
        }
    ).encode()
    sig = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    resp = await post_alert(bot, "kibana", raw, token=None, headers={"X-Triage-Signature": f"sha256={sig}"})
    assert resp.status_code == 202, resp.text
    await bot.posted()
    (card,) = bot.cards(CHANNEL)
    assert "kibana:secops/k-9" in card["text"]
    assert all('"t":"kibana:secops/k-9"' in ref for ref in card_refs(card))
    # The card works: "Assign…" to Bob writes in the secops space.
    await bot.click_on_card("assign_open", channel=CHANNEL, ts=card["ts"])
    (opened,) = await slack_fake.wait_for("views.open")
    await bot.submit_view(
        opened.args["view"], {"assign_user": {"assign_user": {"type": "users_select", "selected_user": BOB}}}
    )
    await bot.settle()
    assert kibana_fake.assignees("k-9", space="secops") == [KB_BOB]


async def test_routes_by_platform_and_severity(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """TRIAGE_ALERT_ROUTES sends platform:severity, then platform, then the default channel."""
    bot = await make_bot(triage_alert_routes={"xpanse": "CXP", "xpanse:critical": "CCRIT"})
    resp = await post_alert(
        bot,
        "xpanse",
        {
            "alerts": [
                {"incident_id": "1", "description": "Exposed RDP", "severity": "Critical"},
                {"incident_id": "2", "description": "Old TLS", "severity": "low"},
            ]
        },
    )
    assert resp.status_code == 202, resp.text
    assert [(p["id"], p["channel"]) for p in resp.json()["accepted"]] == [("1", "CCRIT"), ("2", "CXP")]
    resp = await post_alert(bot, "kibana", [{"id": "k1", "title": "Malware"}])
    assert resp.json()["accepted"][0]["channel"] == CHANNEL
    await bot.posted()
    assert len(bot.cards("CCRIT")) == len(bot.cards("CXP")) == len(bot.cards(CHANNEL)) == 1


async def test_unknown_platform_is_404(bot: BotHarness, slack_fake: SlackFake) -> None:
    """POST /alerts/splunk answers 404 and posts nothing."""
    resp = await post_alert(bot, "splunk", {"id": "1"})
    assert resp.status_code == 404 and "splunk" in resp.json()["error"]
    assert slack_fake.calls_to("chat.postMessage") == []


async def test_bad_auth_is_401(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """A wrong token, a wrong signature, or none at all: 401 and nothing posted."""
    bot = await make_bot(triage_webhook_secret=SECRET)
    body = {"id": FINDING, "title": "x"}
    assert (await post_alert(bot, "datadog", body, token="wrong")).status_code == 401
    assert (await post_alert(bot, "datadog", body, token=None)).status_code == 401
    wrong_sig = hmac.new(b"other", json.dumps(body).encode(), hashlib.sha256).hexdigest()
    resp = await post_alert(bot, "datadog", body, token=None, headers={"X-Triage-Signature": f"sha256={wrong_sig}"})
    assert resp.status_code == 401
    # A signature over a different body does not authenticate this one.
    good_for_other = hmac.new(SECRET.encode(), b"{}", hashlib.sha256).hexdigest()
    resp = await post_alert(bot, "datadog", body, token=None, headers={"X-Triage-Signature": good_for_other})
    assert resp.status_code == 401
    assert slack_fake.calls_to("chat.postMessage") == []


async def test_bad_bodies_are_400_with_the_reason(bot: BotHarness, slack_fake: SlackFake) -> None:
    """Malformed JSON, no id, a non-numeric Xpanse id or a bad alert in a batch: 400 saying why, nothing posted."""
    cases: list[tuple[str, Any, str]] = [
        ("datadog", b"{not json", "not valid JSON"),
        ("datadog", b"", "not valid JSON"),
        ("datadog", {"title": "no id"}, "alert #1 has no id"),
        ("xpanse", {"id": "abc"}, "Xpanse incident id is a number"),
        ("kibana", [], "no alerts"),
        ("kibana", [{"id": "ok-1"}, {"id": "bad id with spaces"}], "alert #2"),
        ("datadog", ["just a string"], "alert #1 is not a JSON object"),
        ("datadog", [{"id": str(i)} for i in range(51)], "at most 50 alerts"),
    ]
    for platform, body, reason in cases:
        resp = await post_alert(bot, platform, body)
        assert resp.status_code == 400, (body, resp.text)
        assert reason in resp.json()["error"], (body, resp.json())
    assert slack_fake.calls_to("chat.postMessage") == []


async def test_too_large_body_is_413(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """A body over TRIAGE_WEBHOOK_MAX_BYTES is refused 413, with or without a Content-Length."""
    bot = await make_bot(triage_webhook_max_bytes=2048)
    big = json.dumps({"id": "1", "title": "x" * 4000}).encode()
    resp = await post_alert(bot, "xpanse", big)
    assert resp.status_code == 413

    # Chunked, so the server cannot trust a Content-Length.
    async def chunks() -> Any:
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    resp = await bot.http.post(
        f"{bot.url}/alerts/xpanse", content=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resp.status_code == 413
    assert slack_fake.calls_to("chat.postMessage") == []


async def test_chunked_body_under_the_limit_is_read_whole(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """A chunked body that arrives in pieces is read to its end, not cut at the first piece."""
    bot = await make_bot(triage_webhook_max_bytes=4096)
    raw = json.dumps({"id": "77", "title": "Slow sender " + "y" * 1500}).encode()

    async def chunks() -> Any:
        import asyncio

        for start in range(0, len(raw), 300):
            yield raw[start : start + 300]
            await asyncio.sleep(0.01)  # let each piece arrive on its own

    resp = await bot.http.post(
        f"{bot.url}/alerts/xpanse", content=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resp.status_code == 202, resp.text
    await bot.posted()
    (card,) = bot.cards(CHANNEL)
    assert "Slow sender" in card["text"]


async def test_no_channel_configured_is_503(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """Without TRIAGE_ALERT_CHANNEL, an alert no route covers is refused 503 and nothing of its batch is posted."""
    bot = await make_bot(triage_alert_channel=None, triage_alert_routes={"datadog:critical": "CCRIT"})
    resp = await post_alert(bot, "datadog", [{"id": "A1", "severity": "critical"}, {"id": "A2", "severity": "low"}])
    assert resp.status_code == 503 and "TRIAGE_ALERT_CHANNEL" in resp.json()["error"]
    assert slack_fake.calls_to("chat.postMessage") == []


async def test_slack_refusing_the_card_keeps_the_alert(make_bot: MakeBot, slack_fake: SlackFake) -> None:
    """When Slack refuses the card (bot not in the channel) the alert stays stored and is carded once Slack takes it."""
    bot = await make_bot()
    slack_fake.fail("chat.postMessage", "not_in_channel")
    resp = await post_alert(bot, "xpanse", {"id": "12"})
    assert resp.status_code == 202, resp.text
    await slack_fake.wait_for("chat.postMessage", 2, timeout=10)
    await bot.posted()
    (card,) = bot.cards(CHANNEL)
    assert "xpanse:12" in card["text"]


async def test_redelivery_updates_the_card_and_notes_the_change(bot: BotHarness, slack_fake: SlackFake) -> None:
    """The same alert delivered again adds no card; a new severity redraws the card and adds a thread note."""
    body = {"id": "31", "description": "Exposed RDP", "severity": "low"}
    assert (await post_alert(bot, "xpanse", body)).status_code == 202
    await bot.posted()
    (card,) = bot.cards(CHANNEL)
    again = await post_alert(bot, "xpanse", body)
    assert again.json()["accepted"][0]["outcome"] == "unchanged"
    await bot.posted()
    assert len(bot.cards(CHANNEL)) == 1 and slack_fake.calls_to("chat.update") == []
    changed = await post_alert(bot, "xpanse", {**body, "severity": "critical"})
    assert changed.json()["accepted"][0]["outcome"] == "updated"
    await bot.posted()
    (redrawn,) = bot.cards(CHANNEL)
    assert redrawn["ts"] == card["ts"] and "critical" in json.dumps(redrawn["blocks"]).lower()
    (note,) = bot.replies(CHANNEL, card["ts"])
    assert "severity low → critical" in note["text"]
