"""Each platform's full triage vocabulary end to end, from signed Slack payloads to what the fakes received.

Datadog mute / unmute / detach, Kibana reopen / acknowledge / tags and the attribution
notes, Xpanse reopen and its card details: from `/triage`, from card buttons and the
mute modal. Every request the fakes get is contract-checked (or, for DetachCase, held
against the recordings), and every Slack message is validated as Block Kit at teardown.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import MakeBot
from tests.scenario.harness import CHANNEL, BotHarness
from tests.scenario.test_cards import buttons, field, open_modal, show, updates_of

FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="
CASE_UUID = "4b1c9d2e-0000-4000-8000-00000000c0de"
DAY_MS = 86_400_000


def posted(slack: SlackFake) -> str:
    """Everything the bot posted or updated in Slack, as one string."""
    calls = slack.calls_to("chat.postMessage") + slack.calls_to("chat.update")
    return json.dumps([c.args for c in calls], ensure_ascii=False)


def mute_of(fake: DatadogFake) -> dict[str, Any]:
    (call,) = fake.calls("/findings/mute")
    body: dict[str, Any] = call.body["data"]["attributes"]["mute"]
    return body


def notes(fake: KibanaFake, space: str = "default") -> list[str]:
    return [n["note"] for n in fake.notes.get(space, [])]


def mute_values(reason: str | None, day: str | None, text: str | None) -> dict[str, dict[str, Any]]:
    return {
        "mute_reason": {
            "mute_reason": {"type": "static_select", "selected_option": {"value": reason} if reason else None}
        },
        "mute_until": {"mute_until": {"type": "datepicker", "selected_date": day}},
        "mute_description": {"mute_description": {"type": "plain_text_input", "value": text}},
    }


# ---- commands ------------------------------------------------------------------------------


async def test_one_resolve_mutes_datadog_and_closes_kibana_each_its_own_way(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake, kibana_fake: KibanaFake
) -> None:
    """Mixed platforms: Datadog gets a mute with the expiry and description, Kibana a close and a note."""
    datadog_fake.add_finding(FINDING)
    kibana_fake.add_alert("k1")
    resp = await bot.command(f"resolve dd:{FINDING} kibana:k1 reason false_positive for 30d -- scanner noise")
    assert resp.text == "On it: resolve 2 items."
    await bot.settle()
    mute = mute_of(datadog_fake)
    assert {k: mute[k] for k in ("is_muted", "reason", "description")} == {
        "is_muted": True,
        "reason": "FALSE_POSITIVE",
        "description": "scanner noise",
    }
    assert abs(mute["expire_at"] - (time.time() * 1000 + 30 * DAY_MS)) < 60_000
    assert kibana_fake.status("k1") == "closed"
    (status,) = kibana_fake.writes()
    assert status.body["reason"] == "false_positive"
    (note,) = notes(kibana_fake)
    assert note.startswith("closed (false_positive) by U0ALICE from Slack, job ") and note.endswith(": scanner noise")
    assert datadog_fake.calls("/api/note") == [] and kibana_fake.calls("/findings/mute") == []
    text = posted(slack_fake)
    assert "muted (false_positive) until" in text and "closed (false_positive); comment in the note" in text


async def test_reopen_unmutes_reopens_and_reinvestigates(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """`/triage reopen` on all three: unmute with the given reason, status open, under_investigation."""
    datadog_fake.add_finding(FINDING)["mute"] = {"is_muted": True, "reason": "FALSE_POSITIVE"}
    kibana_fake.add_alert("k1", status="closed")
    xpanse_fake.add_incident("77", status="resolved_-_no_risk")
    await bot.command(f"reopen dd:{FINDING} kibana:k1 xpanse:77 reason human_error -- it was real")
    await bot.settle()
    assert mute_of(datadog_fake) == {"is_muted": False, "reason": "HUMAN_ERROR", "description": "it was real"}
    assert datadog_fake.findings[FINDING]["mute"] == {"is_muted": False}
    assert kibana_fake.status("k1") == "open"
    assert xpanse_fake.incidents["77"].status == "under_investigation"
    (note,) = notes(kibana_fake)
    assert note.startswith("reopened by U0ALICE from Slack") and "it was real" in note
    assert "reopened 3 items" in posted(slack_fake)


async def test_ack_tag_and_detach_from_commands(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake, kibana_fake: KibanaFake
) -> None:
    """ack → acknowledged; tag → SetAlertTags with both lists; detach → DELETE /findings/cases."""
    kibana_fake.add_alert("k1", space="secops")
    datadog_fake.add_case(CASE_UUID, "SEC-9")
    datadog_fake.add_finding(FINDING)
    await bot.command(f"attach dd:{FINDING} case {CASE_UUID}")
    await bot.command("ack kibana:secops/k1")
    await bot.command("tag kibana:secops/k1 +triaged -noise")
    await bot.command(f"detach dd:{FINDING}")
    await bot.settle()
    assert kibana_fake.status("k1", "secops") == "acknowledged"
    (tags,) = kibana_fake.calls("/signals/tags")
    assert tags.path == "/s/secops/api/detection_engine/signals/tags"
    assert tags.body == {"ids": ["k1"], "tags": {"tags_to_add": ["triaged"], "tags_to_remove": ["noise"]}}
    assert kibana_fake.tags("k1", "secops") == ["triaged"]
    assert datadog_fake.cases[CASE_UUID]["findings"] == []
    assert len(datadog_fake.calls("/api/v2/security/findings/cases", "DELETE")) == 1
    # Two jobs on one item, which the worker's job tasks may run in either order: both notes, once each.
    written = sorted(n.split(" by ")[0] for n in notes(kibana_fake, "secops"))
    assert written == ["acknowledged", "tagged +triaged -noise"]
    text = posted(slack_fake)
    assert "tagged 1 item (+triaged -noise)" in text and "detached 1 item" in text


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (f"resolve dd:{FINDING} reason maybe", "`false_positive`, `risk_accepted`"),
        (f"resolve dd:{FINDING} reason other -- {'x' * 281}", "at most 280 characters"),
        (f"resolve dd:{FINDING} reason other until 2020-01-31", "`for 30d` (days)"),
        (f"resolve dd:{FINDING}", "needs a reason"),
        (f"reopen dd:{FINDING} reason risk_accepted", "`no_pending_fix`, `human_error`"),
        ('tag kibana:k1 "+needs review"', "`+tag` to add and `-tag` to remove"),
        ("tag kibana:k1 +x -x", "added and removed at once"),
        ("ack xpanse:77", "works on Kibana items only"),
        ("detach kibana:k1", "works on Datadog items only"),
    ],
)
async def test_bad_input_is_refused_before_any_call_with_the_valid_forms(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
    command: str,
    shown: str,
) -> None:
    """An unknown reason, a long description, a past expiry, a bad tag: an ephemeral usage, no call."""
    resp = await bot.command(command)
    body = resp.json()
    assert shown in body["text"] and "Usage:" in body["text"], body["text"]
    assert body.get("response_type", "ephemeral") == "ephemeral"
    await bot.settle()
    assert datadog_fake.requests == kibana_fake.requests == xpanse_fake.requests == []
    assert slack_fake.calls_to("chat.postMessage") == []


async def test_help_shows_the_reasons_and_expiry_forms(bot: BotHarness) -> None:
    """`/triage help resolve` lists Datadog's mute reasons and the expiry forms; reopen its unmute reasons."""
    resolve = str(bot_json(await bot.command("help resolve")))
    assert "Datadog reasons: `false_positive`" in resolve and "until 2027-01-31" in resolve
    reopen = str(bot_json(await bot.command("help reopen")))
    assert "`no_pending_fix`" in reopen
    everything = str(bot_json(await bot.command("help")))
    for verb in ("reopen", "ack", "tag", "detach"):
        assert f"/triage {verb}" in everything


def bot_json(resp: Any) -> Any:
    return resp.json()


# ---- buttons and the mute modal ---------------------------------------------------------------


async def test_mute_button_modal_then_unmute_button(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """Mute… opens the mute modal; its submission mutes until the end of the day picked; Unmute undoes it."""
    datadog_fake.add_finding(FINDING, title="Open port")
    ts = await show(bot, f"dd:{FINDING}")
    view = await open_modal(bot, slack_fake, "mute_open", ts)
    assert view["callback_id"] == "mute_modal"
    resp = await bot.submit_view(view, mute_values("risk_accepted", "2099-01-31", "fix planned"))
    assert resp.status_code == 200 and resp.text == ""
    await bot.settle()
    mute = mute_of(datadog_fake)
    assert mute == {
        "is_muted": True,
        "reason": "RISK_ACCEPTED",
        "description": "fix planned",
        "expire_at": 4_073_587_199_999,  # the last millisecond of 2099-01-31, UTC
    }
    card = updates_of(slack_fake, ts)[-1]
    assert field(card, "Muted") == "yes (risk_accepted), until 2099-01-31 23:59 UTC"
    assert "unmute" in buttons(card) and "mute_open" not in buttons(card)
    datadog_fake.reset_log()
    await bot.click_on_card("unmute", channel=CHANNEL, ts=ts)
    await bot.settle()
    assert mute_of(datadog_fake) == {"is_muted": False, "reason": "OTHER"}
    assert field(updates_of(slack_fake, ts)[-1], "Muted") == "no"
    summaries = [r["text"] for r in bot.replies(CHANNEL, ts)]
    assert any(t.startswith("<@U0ALICE> muted 1 item") for t in summaries)
    assert any(t.startswith("<@U0ALICE> unmuted 1 item") for t in summaries)


async def test_mute_modal_refuses_a_past_date_and_a_missing_reason(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """A past date or no reason keeps the form open with the error on that field; nothing is sent."""
    datadog_fake.add_finding(FINDING)
    view = await open_modal(bot, slack_fake, "mute_open", await show(bot, f"dd:{FINDING}"))
    datadog_fake.reset_log()
    resp = await bot.submit_view(view, mute_values("other", "2020-01-01", None))
    assert resp.json() == {"response_action": "errors", "errors": {"mute_until": "Pick a date after today"}}
    resp = await bot.submit_view(view, mute_values(None, None, None))
    assert resp.json() == {"response_action": "errors", "errors": {"mute_reason": "Pick a reason"}}
    await bot.settle()
    assert datadog_fake.requests == []


async def test_detach_button_on_a_finding_in_a_case(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """A card of a finding in a case has Detach from case; clicking it empties the Case field."""
    datadog_fake.add_case(CASE_UUID, "SEC-7")
    finding = datadog_fake.add_finding(FINDING)
    finding["case_id"], finding["case_key"] = CASE_UUID, "SEC-7"
    datadog_fake.cases[CASE_UUID]["findings"].append(FINDING)
    ts = await show(bot, f"dd:{FINDING}")
    assert "detach" in buttons(slack_fake.message(CHANNEL, ts) or {})
    await bot.click_on_card("detach", channel=CHANNEL, ts=ts)
    await bot.settle()
    assert datadog_fake.cases[CASE_UUID]["findings"] == []
    card = updates_of(slack_fake, ts)[-1]
    assert field(card, "Case") == "—" and "detach" not in buttons(card)


async def test_kibana_acknowledge_and_reopen_buttons(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """Acknowledge on an open alert's card; Reopen on a closed one's; each noted on the alert."""
    kibana_fake.add_alert("k1")
    kibana_fake.add_alert("k2", status="closed")
    open_ts, closed_ts = await show(bot, "kibana:k1"), await show(bot, "kibana:k2")
    assert "reopen" in buttons(slack_fake.message(CHANNEL, closed_ts) or {})
    await bot.click_on_card("ack", channel=CHANNEL, ts=open_ts)
    await bot.click_on_card("reopen", channel=CHANNEL, ts=closed_ts)
    await bot.settle()
    assert (kibana_fake.status("k1"), kibana_fake.status("k2")) == ("acknowledged", "open")
    assert field(updates_of(slack_fake, open_ts)[-1], "Status") == "acknowledged"
    assert sorted(n.split(" by ")[0] for n in notes(kibana_fake)) == ["acknowledged", "reopened"]


async def test_tags_button_and_modal(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """Tags… opens a one-line form; a tag with a space stays in the form; `+a -b` is one SetAlertTags."""
    kibana_fake.add_alert("k1")["kibana.alert.workflow_tags"] = ["noise"]
    ts = await show(bot, "kibana:k1")
    view = await open_modal(bot, slack_fake, "tag_open", ts)
    assert view["callback_id"] == "tag_modal"

    def values(text: str) -> dict[str, dict[str, Any]]:
        return {"tag_changes": {"tag_changes": {"type": "plain_text_input", "value": text}}}

    resp = await bot.submit_view(view, values('+"needs review"'))
    assert "no spaces" in resp.json()["errors"]["tag_changes"]
    resp = await bot.submit_view(view, values("+triaged -noise"))
    assert resp.text == ""
    await bot.settle()
    (write,) = kibana_fake.calls("/signals/tags")
    assert write.body == {"ids": ["k1"], "tags": {"tags_to_add": ["triaged"], "tags_to_remove": ["noise"]}}
    assert kibana_fake.tags("k1") == ["triaged"]
    assert "tagged +triaged -noise" in posted(slack_fake)


async def test_xpanse_reopen_button_and_card_details(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """A resolved incident's card shows its alert count and top assets and offers Reopen."""
    xpanse_fake.add_incident("77", status="resolved")
    xpanse_fake.add_alert("77", domain="acme.com", ip="1.1.1.1")
    xpanse_fake.add_alert("77", domain="acme.com")
    ts = await show(bot, "xpanse:77")
    card = slack_fake.message(CHANNEL, ts) or {}
    assert field(card, "Alerts") == "2" and field(card, "Top assets") == "acme.com, 1.1.1.1"
    await bot.click_on_card("reopen", channel=CHANNEL, ts=ts)
    await bot.settle()
    assert xpanse_fake.incidents["77"].status == "under_investigation"
    assert len(xpanse_fake.calls("/get_incident_extra_data/")) == 1  # the redraw reuses the answer


# ---- attribution notes --------------------------------------------------------------------------


async def test_a_failed_note_is_a_warning_and_the_action_stands(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """Kibana refusing the note (no Notes privilege) leaves the alert acknowledged and warns on the item."""
    kibana_fake.add_alert("k1")
    kibana_fake.fail("/api/note", 403, times=5, body={"statusCode": 403, "error": "Forbidden", "message": "no notes"})
    await bot.command("ack kibana:k1")
    await bot.settle()
    assert kibana_fake.status("k1") == "acknowledged"
    text = posted(slack_fake)
    assert "the note saying who asked was not added" in text and "no notes" in text


async def test_notes_off_writes_no_note(make_bot: MakeBot, kibana_fake: KibanaFake) -> None:
    """With KIBANA_NOTES=off the write happens and no note is sent."""
    bot = await make_bot(kibana_notes=False)
    kibana_fake.add_alert("k1")
    await bot.command("ack kibana:k1")
    await bot.settle()
    assert kibana_fake.status("k1") == "acknowledged"
    assert kibana_fake.calls("/api/note") == []
