"""Alert cards end to end: `/triage show` posts a card, then every button on it is clicked.

Each action must end with a threaded reply in the card's thread naming who did what
to which item, and the card redrawn in place (chat.update) from the platform's state.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, DD_ALICE, KB_BOB
from tests.scenario.harness import CHANNEL, BotHarness

FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="
CASE_UUID = "4b1c9d2e-0000-4000-8000-00000000c0de"


async def show(bot: BotHarness, target: str) -> str:
    """Post the card of ``target`` with `/triage show`; return the card's ts."""
    before = {m["ts"] for m in bot.cards()}
    resp = await bot.command(f"show {target}")
    assert resp.status_code == 200, resp.text
    await bot.settle()
    new = [m for m in bot.cards() if m["ts"] not in before]
    assert len(new) == 1, f"expected one new card, got {new}"
    return str(new[0]["ts"])


def buttons(message: dict[str, Any]) -> list[str]:
    """The action_ids of the buttons on a card."""
    return [e["action_id"] for b in message.get("blocks", []) if b.get("type") == "actions" for e in b["elements"]]


def field(message: dict[str, Any], name: str) -> str:
    """The value of one of the card's fields (Severity, Status, Assignee, Case)."""
    for block in message.get("blocks", []):
        for f in block.get("fields", []):
            head, _, value = f["text"].partition("\n")
            if head == f"*{name}*":
                return str(value)
    raise AssertionError(f"no {name} field on {message}")


def updates_of(slack: SlackFake, ts: str) -> list[dict[str, Any]]:
    """The chat.update calls aimed at the card ``ts``."""
    return [c.args for c in slack.calls_to("chat.update") if c.args.get("ts") == ts]


async def open_modal(bot: BotHarness, slack: SlackFake, action_id: str, ts: str) -> dict[str, Any]:
    """Click a button that opens a modal; return the view the bot opened."""
    opened = len(slack.calls_to("views.open"))
    resp = await bot.click_on_card(action_id, channel=CHANNEL, ts=ts)
    assert resp.status_code == 200
    calls = await slack.wait_for("views.open", opened + 1)
    view = calls[-1].args["view"]
    assert isinstance(view, dict)
    return view


async def test_show_posts_a_card_with_every_button(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """`/triage show dd:…` posts the platform's state as a card with every Datadog button for it."""
    datadog_fake.add_finding(FINDING, title="Public S3 bucket", severity="critical")
    ts = await show(bot, f"dd:{FINDING}")
    card = slack_fake.message(CHANNEL, ts)
    assert card is not None
    assert "Public S3 bucket" in card["text"]
    assert field(card, "Severity") == "critical" and field(card, "Assignee") == "_unassigned_"
    # Datadog's resolve is a mute: Mute… instead of Resolve…; no case yet, so no Detach.
    assert buttons(card) == ["assign_me", "assign_open", "unassign", "attach_open", "mute_open", "refresh"]
    assert field(card, "Muted") == "no"


async def test_assign_to_me_threads_the_outcome_and_redraws_the_card(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
) -> None:
    """ "Assign to me" assigns on Datadog, replies in the card's thread, and shows the assignee as a mention."""
    datadog_fake.add_finding(FINDING, title="Public S3 bucket")
    ts = await show(bot, f"dd:{FINDING}")
    resp = await bot.click_on_card("assign_me", channel=CHANNEL, ts=ts, user=ALICE)
    assert resp.status_code == 200 and resp.text == ""  # an empty ack: the card itself will change
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE
    (reply,) = bot.replies(CHANNEL, ts)
    assert reply["text"].startswith(f"<@{ALICE}> assigned 1 item to <@{ALICE}>")
    assert f"dd:{FINDING}" in str(reply["blocks"])
    (update,) = updates_of(slack_fake, ts)
    assert field(update, "Assignee") == f"<@{ALICE}>"
    assert "updated" in str(update["blocks"]) and f"by <@{ALICE}>" in str(update["blocks"])


async def test_unassign_button_clears_the_assignee(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """ "Unassign" empties a Kibana alert's assignees and the card says unassigned."""
    kibana_fake.add_alert("k1", space="secops", rule_name="Brute force", assignees=[KB_BOB])
    ts = await show(bot, "kibana:secops/k1")
    card = slack_fake.message(CHANNEL, ts)
    assert card is not None and field(card, "Assignee") != "_unassigned_"
    await bot.click_on_card("unassign", channel=CHANNEL, ts=ts, user=BOB)
    await bot.settle()
    assert kibana_fake.assignees("k1", space="secops") == []
    (reply,) = bot.replies(CHANNEL, ts)
    assert reply["text"].startswith(f"<@{BOB}> unassigned 1 item")
    assert "kibana:secops/k1" in str(reply["blocks"])
    (update,) = updates_of(slack_fake, ts)
    assert field(update, "Assignee") == "_unassigned_"


async def test_refresh_rereads_the_platform(bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake) -> None:
    """ "Refresh" re-reads the incident and chat.update's the card with what changed on the platform."""
    incident = xpanse_fake.add_incident("5471", description="Exposed RDP", severity="low")
    ts = await show(bot, "xpanse:5471")
    card = slack_fake.message(CHANNEL, ts)
    assert card is not None and field(card, "Severity") == "low"
    # Someone changes the incident in the Xpanse console.
    incident.severity = "critical"
    incident.status = "under_investigation"
    await bot.click_on_card("refresh", channel=CHANNEL, ts=ts)
    await bot.settle()
    (update,) = updates_of(slack_fake, ts)
    assert field(update, "Severity") == "critical"
    assert field(update, "Status") == "under_investigation"
    assert bot.replies(CHANNEL, ts) == []  # a read changes nothing, so no thread noise


async def test_assign_modal_picks_a_user(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """ "Assign…" opens a users_select modal; submitting it with Bob assigns him and threads the outcome."""
    kibana_fake.add_alert("k2", rule_name="Malware")
    ts = await show(bot, "kibana:k2")
    view = await open_modal(bot, slack_fake, "assign_open", ts)
    assert view["callback_id"] == "assign_modal"
    elements = [b["element"] for b in view["blocks"] if b["type"] == "input"]
    assert [e["type"] for e in elements] == ["users_select"]
    resp = await bot.submit_view(
        view, {"assign_user": {"assign_user": {"type": "users_select", "selected_user": BOB}}}, user=ALICE
    )
    assert resp.status_code == 200 and resp.text == ""  # the modal closes
    await bot.settle()
    assert kibana_fake.assignees("k2") == [KB_BOB]
    (reply,) = bot.replies(CHANNEL, ts)
    assert reply["text"].startswith(f"<@{ALICE}> assigned 1 item to <@{BOB}>")
    (update,) = updates_of(slack_fake, ts)
    assert field(update, "Assignee") == f"<@{BOB}>"


async def test_assign_modal_without_a_pick_shows_an_error(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """Submitting the assign modal with nobody picked keeps it open with an error and changes nothing."""
    kibana_fake.add_alert("k3")
    ts = await show(bot, "kibana:k3")
    view = await open_modal(bot, slack_fake, "assign_open", ts)
    resp = await bot.submit_view(
        view, {"assign_user": {"assign_user": {"type": "users_select", "selected_user": None}}}
    )
    assert resp.json() == {"response_action": "errors", "errors": {"assign_user": "Pick a person"}}
    await bot.settle()
    assert kibana_fake.writes() == []


async def test_attach_modal_attaches_to_a_case_by_key(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """ "Attach to case…" opens a case modal; submitting a key attaches the finding and the card shows the case."""
    datadog_fake.add_finding(FINDING)
    datadog_fake.add_case(CASE_UUID, "SEC-7")
    ts = await show(bot, f"dd:{FINDING}")
    view = await open_modal(bot, slack_fake, "attach_open", ts)
    assert view["callback_id"] == "attach_modal"
    await bot.submit_view(
        view, {"attach_case": {"attach_case": {"type": "plain_text_input", "value": " SEC-7 "}}}, user=BOB
    )
    await bot.settle()
    assert datadog_fake.findings[FINDING]["case_id"] == CASE_UUID
    (reply,) = bot.replies(CHANNEL, ts)
    assert reply["text"].startswith(f"<@{BOB}> attached 1 item to case SEC-7")
    (update,) = updates_of(slack_fake, ts)
    assert "SEC-7" in field(update, "Case")


async def test_resolve_modal_resolves_with_reason_and_comment(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """ "Resolve…" opens a reason/comment modal; submitting it resolves the incident with both."""
    xpanse_fake.add_incident("7001", description="Open Elasticsearch")
    ts = await show(bot, "xpanse:7001")
    view = await open_modal(bot, slack_fake, "resolve_open", ts)
    assert view["callback_id"] == "resolve_modal"
    await bot.submit_view(
        view,
        {
            "resolve_reason": {
                "resolve_reason": {
                    "type": "static_select",
                    "selected_option": {
                        "text": {"type": "plain_text", "text": "Resolved – no risk"},
                        "value": "resolved_-_no_risk",
                    },
                }
            },
            "resolve_comment": {"resolve_comment": {"type": "plain_text_input", "value": "test host, firewalled"}},
        },
        user=ALICE,
    )
    await bot.settle()
    incident = xpanse_fake.incidents["7001"]
    assert incident.status == "resolved_-_no_risk"
    assert incident.resolve_comment == "test host, firewalled"
    (reply,) = bot.replies(CHANNEL, ts)
    assert reply["text"].startswith(f"<@{ALICE}> resolved 1 item")
    (update,) = updates_of(slack_fake, ts)
    assert field(update, "Status") == "resolved_-_no_risk"
    assert "resolve_open" not in buttons(update)  # nothing left to resolve


async def test_kibana_resolve_modal_closes_with_reason(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """The Kibana resolve modal closes the alert with the chosen reason; the comment goes into the note."""
    kibana_fake.add_alert("k4", space="secops")
    ts = await show(bot, "kibana:secops/k4")
    view = await open_modal(bot, slack_fake, "resolve_open", ts)
    await bot.submit_view(
        view,
        {
            "resolve_reason": {
                "resolve_reason": {
                    "type": "static_select",
                    "selected_option": {
                        "text": {"type": "plain_text", "text": "False positive"},
                        "value": "false_positive",
                    },
                }
            },
            "resolve_comment": {"resolve_comment": {"type": "plain_text_input", "value": "scanner"}},
        },
    )
    await bot.settle()
    assert kibana_fake.status("k4", space="secops") == "closed"
    (write,) = [w for w in kibana_fake.writes() if w.path.endswith("/signals/status")]
    assert write.body["reason"] == "false_positive"
    (reply,) = bot.replies(CHANNEL, ts)
    # Kibana has no comment API: the comment travels in the attribution note on the alert.
    assert "comment in the note" in str(reply["blocks"])
    (note,) = kibana_fake.notes["secops"]
    assert note["eventId"] == "k4" and note["note"].endswith(": scanner")
    (update,) = updates_of(slack_fake, ts)
    assert field(update, "Status") == "closed"


async def test_card_in_a_thread_replies_in_that_thread(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """A button on a card that itself sits in a thread replies in that same thread, not a new one."""
    datadog_fake.add_finding(FINDING)
    async with slack_fake.client() as client:
        root = await client.chat_postMessage(channel=CHANNEL, text=f"look at dd:{FINDING}")
    await bot.shortcut(slack_fake.message(CHANNEL, root["ts"]) or {})
    await bot.settle()
    (card,) = bot.cards()
    assert card["thread_ts"] == root["ts"]
    await bot.click_on_card("unassign", channel=CHANNEL, ts=card["ts"])
    await bot.settle()
    assert len(bot.replies(CHANNEL, root["ts"])) == 2  # the card and the outcome, in one thread
    assert updates_of(slack_fake, card["ts"])


async def test_button_with_bad_signature_runs_nothing(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """A button click signed with the wrong secret is refused 401 and makes no platform call."""
    datadog_fake.add_finding(FINDING)
    ts = await show(bot, f"dd:{FINDING}")
    datadog_fake.reset_log()
    card = slack_fake.message(CHANNEL, ts) or {}
    value = next(
        e["value"]
        for b in card["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "assign_me"
    )
    body = {
        "type": "block_actions",
        "user": {"id": ALICE},
        "team": {"id": "T111"},
        "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL},
        "channel": {"id": CHANNEL},
        "message": card,
        "trigger_id": "t.1",
        "response_url": slack_fake.webhook_url("bad"),
        "api_app_id": "A111",
        "token": "x",
        "actions": [{"action_id": "assign_me", "block_id": "b", "value": value, "type": "button", "action_ts": "1.2"}],
    }
    resp = await bot.interactive(body, secret="wrong-secret")
    assert resp.status_code == 401
    # A stale timestamp (replay) is refused the same way.
    resp = await bot.interactive(body, ts=1_500_000_000)
    assert resp.status_code == 401
    await bot.settle()
    assert datadog_fake.requests == []
    assert updates_of(slack_fake, ts) == [] and bot.replies(CHANNEL, ts) == []


async def test_failing_platform_is_reported_per_item_without_a_stack_trace(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
) -> None:
    """A Datadog that answers 403 to the write yields a failed item with Datadog's reason in the thread."""
    datadog_fake.add_finding(FINDING)
    ts = await show(bot, f"dd:{FINDING}")
    datadog_fake.fail(
        "/findings/assignee",
        403,
        times=10,
        body={
            "errors": [
                {
                    "status": "403",
                    "title": "Forbidden",
                    "detail": "<!channel> Missing permission security_monitoring_findings_write for <@U0BOB>",
                }
            ]
        },
    )
    await bot.click_on_card("assign_me", channel=CHANNEL, ts=ts)
    await bot.settle()
    (reply,) = bot.replies(CHANNEL, ts)
    text = str(reply["blocks"])
    assert "1 failed" in reply["text"]
    assert "security_monitoring_findings_write" in text and "403" in text
    assert "Traceback" not in text
    # Vendor text cannot ping the channel; a user mention in it only renders a name.
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text
    # The card is redrawn from the platform, which still shows the item unassigned.
    (update,) = updates_of(slack_fake, ts)
    assert field(update, "Assignee") == "_unassigned_"
    assert datadog_fake.findings[FINDING]["assignee_id"] is None


async def test_button_with_an_unreadable_value_is_answered_not_crashed(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """A card button whose value the bot cannot read (an old card) gets a clear ephemeral answer and runs nothing."""
    for action_id in ("assign_me", "assign_open"):
        await bot.click(action_id, '{"old":"format"}', message_ts="1700000000.000100")
    bodies = await slack_fake.wait_for_responses(2)
    for body in bodies:
        assert body["response_type"] == "ephemeral"
        assert body["text"].startswith("This card can no longer be acted on")
    await bot.settle()
    assert datadog_fake.requests == [] and slack_fake.calls_to("views.open") == []
