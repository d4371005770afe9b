"""On-call handoff end to end: collect, preview, cancel, confirm once, batch writes, retry, DM."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from typing import Any

from bot.slack.ids import ActionId
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, CAROL, DD_ALICE, DD_BOB, KB_ALICE, KB_BOB
from tests.scenario.harness import CHANNEL, BotHarness

N_DD, N_KB_DEFAULT, N_KB_SECOPS, N_XP = 230, 40, 30, 25


def dd_id(n: int) -> str:
    return base64.b64encode(f"handoff-finding-{n:05d}".encode()).decode()


def seed_holdings(dd: DatadogFake, kb: KibanaFake, xp: XpanseFake) -> None:
    """Alice holds a few hundred items across the three platforms; a few decoys belong to others."""
    for n in range(N_DD):
        dd.add_finding(dd_id(n), title=f"Finding {n}", assignee_id=DD_ALICE)
    dd.add_finding(dd_id(99999), title="Bob's", assignee_id=DD_BOB)
    for n in range(N_KB_DEFAULT):
        kb.add_alert(f"d{n}", space="default", assignees=[KB_ALICE])
    for n in range(N_KB_SECOPS):
        kb.add_alert(f"s{n}", space="secops", assignees=[KB_ALICE])
    kb.add_alert("other", space="default", assignees=[KB_BOB])
    for n in range(N_XP):
        xp.add_incident(str(1000 + n), assigned_user_mail="alice@example.com")
    xp.add_incident("9999", assigned_user_mail="bob@example.com")


TOTAL = N_DD + N_KB_DEFAULT + N_KB_SECOPS + N_XP


def writes(dd: DatadogFake, kb: KibanaFake, xp: XpanseFake) -> tuple[int, int, int]:
    """(Datadog assignment calls, Kibana assignee calls, Xpanse update_incident calls)."""
    return (
        len(dd.calls("/api/v2/security/findings/assignee", method="PATCH")),
        len([r for r in kb.writes() if r.path.endswith("/signals/assignees")]),
        len(xp.calls("/incidents/update_incident/")),
    )


def button_message(slack: SlackFake, action_id: str) -> dict[str, Any] | None:
    """The newest message in the channel carrying a button ``action_id``."""
    for message in reversed(slack.messages_in(CHANNEL)):
        for block in message.get("blocks") or []:
            if any(e.get("action_id") == action_id for e in block.get("elements", [])):
                return message
    return None


async def start_handoff(
    bot: BotHarness, slack: SlackFake, text: str = f"handoff to <@{BOB}|bob>", user: str = ALICE
) -> str:
    """Run the handoff command and return the ts of the preview with its Confirm button."""
    resp = await bot.command(text, user=user)
    assert resp.status_code == 200
    assert "Collecting" in resp.text, resp.text
    await bot.settle(timeout=20)
    preview = button_message(slack, ActionId.HANDOFF_CONFIRM)
    assert preview is not None, slack.messages_in(CHANNEL)
    return str(preview["ts"])


def all_with(dd: DatadogFake, kb: KibanaFake, xp: XpanseFake) -> set[str]:
    """Who holds each of Alice's original items now (as a set of holders)."""
    holders = {dd.findings[dd_id(n)]["assignee_id"] for n in range(N_DD)}
    holders |= {tuple(kb.assignees(f"d{n}")) for n in range(N_KB_DEFAULT)}
    holders |= {tuple(kb.assignees(f"s{n}", "secops")) for n in range(N_KB_SECOPS)}
    holders |= {xp.incidents[str(1000 + n)].assigned_user_mail for n in range(N_XP)}
    return {str(h) for h in holders}


async def test_preview_then_cancel_changes_nothing(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """The preview counts every platform's items; Cancel leaves every platform untouched and Confirm is then refused."""
    seed_holdings(datadog_fake, kibana_fake, xpanse_fake)
    ts = await start_handoff(bot, slack_fake)
    preview = slack_fake.message(CHANNEL, ts)
    assert preview is not None
    text = json.dumps(preview["blocks"])
    assert f"{TOTAL} open items" in text
    assert f"Datadog {N_DD}" in text and f"Kibana {N_KB_DEFAULT + N_KB_SECOPS}" in text and f"Xpanse {N_XP}" in text
    assert writes(datadog_fake, kibana_fake, xpanse_fake) == (0, 0, 0)
    ref = _ref(preview)
    await bot.click_on_card(ActionId.HANDOFF_CANCEL, channel=CHANNEL, ts=ts, user=ALICE)
    await bot.settle()
    await bot.click(ActionId.HANDOFF_CONFIRM, json.dumps({"id": ref}), user=ALICE, channel=CHANNEL, message_ts=ts)
    await bot.settle()
    assert writes(datadog_fake, kibana_fake, xpanse_fake) == (0, 0, 0)
    assert all_with(datadog_fake, kibana_fake, xpanse_fake) == {DD_ALICE, str((KB_ALICE,)), "alice@example.com"}
    assert any("cancelled" in str(r.get("text")) for r in slack_fake.responses), slack_fake.responses


def _ref(message: dict[str, Any]) -> str:
    for block in message.get("blocks") or []:
        for e in block.get("elements", []):
            if e.get("action_id") == ActionId.HANDOFF_CONFIRM:
                return str(json.loads(e["value"])["id"])
    raise AssertionError("no confirm button")


async def test_double_confirm_reassigns_everything_with_minimum_writes_and_dms(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """Two Confirms make one job: all to Bob with ⌈N/100⌉ Datadog, one per Kibana space, one per incident."""
    seed_holdings(datadog_fake, kibana_fake, xpanse_fake)
    ts = await start_handoff(bot, slack_fake)
    await asyncio.gather(
        bot.click_on_card(ActionId.HANDOFF_CONFIRM, channel=CHANNEL, ts=ts, user=ALICE),
        bot.click_on_card(ActionId.HANDOFF_CONFIRM, channel=CHANNEL, ts=ts, user=ALICE),
    )
    await bot.settle(timeout=30)
    assert writes(datadog_fake, kibana_fake, xpanse_fake) == (math.ceil(N_DD / 100), 2, N_XP)
    assert all_with(datadog_fake, kibana_fake, xpanse_fake) == {DD_BOB, str((KB_BOB,)), "bob@example.com"}
    # The decoys stay with their owners.
    assert datadog_fake.findings[dd_id(99999)]["assignee_id"] == DD_BOB
    assert xpanse_fake.incidents["9999"].assigned_user_mail == "bob@example.com"
    assert any("already confirmed" in str(r.get("text")) for r in slack_fake.responses), slack_fake.responses
    # One outcome message, then (too many items to name in it) every item paged in the thread,
    # with the CSV of all of them attached.
    results = [c for c in slack_fake.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    assert len(results) == 2
    assert "handed off" in results[0].args["text"]
    assert len(slack_fake.calls_to("files.completeUploadExternal")) == 1
    (csv,) = [f["content"] for f in slack_fake.files.values()]
    assert csv is not None and len(csv.strip().splitlines()) == TOTAL + 1  # a header, then every item
    assert f"{TOTAL}" in results[0].args["text"]
    dm = slack_fake.calls_to("conversations.open")
    assert [c.args.get("users") for c in dm] == [BOB]
    dm_posts = [c for c in slack_fake.calls_to("chat.postMessage") if str(c.args.get("channel", "")).startswith("D")]
    assert len(dm_posts) == 1 and f"<@{ALICE}>" in dm_posts[0].args["text"]
    handoffs = [e for e in await bot.svc.jobs.ledger_since(0) if e.verb == "handoff" and e.target]
    assert len(handoffs) == TOTAL and {e.outcome for e in handoffs} == {"done"}
    assert {e.before for e in handoffs if e.platform == "xpanse"} == {"alice@example.com"}


async def test_partial_failure_then_retry_only_failed_items(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """Failed items are listed with reasons; "Retry failed" rewrites only those, and then everything is Bob's."""
    seed_holdings(datadog_fake, kibana_fake, xpanse_fake)
    for n in (3, 150):
        datadog_fake.fail_finding(dd_id(n), 500, detail="finding is locked")
    xpanse_fake.reply_false.update({"1004", "1007"})
    ts = await start_handoff(bot, slack_fake)
    await bot.click_on_card(ActionId.HANDOFF_CONFIRM, channel=CHANNEL, ts=ts, user=ALICE)
    await bot.settle(timeout=30)
    thread = [c for c in slack_fake.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    result = next(c for c in thread if ActionId.RETRY_FAILED.value in json.dumps(c.args.get("blocks")))
    text = json.dumps(result.args["blocks"])
    assert "finding is locked" in text and "did not apply" in text
    assert "Retry 4 failed" in text
    before = writes(datadog_fake, kibana_fake, xpanse_fake)
    xpanse_fake.reply_false.clear()
    retry_msg = button_message(slack_fake, ActionId.RETRY_FAILED)
    assert retry_msg is not None
    await bot.click_on_card(ActionId.RETRY_FAILED, channel=CHANNEL, ts=str(retry_msg["ts"]), user=ALICE)
    await bot.settle(timeout=30)
    after = writes(datadog_fake, kibana_fake, xpanse_fake)
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 0, 2)
    assert all_with(datadog_fake, kibana_fake, xpanse_fake) == {DD_BOB, str((KB_BOB,)), "bob@example.com"}
    retried = [c for c in slack_fake.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts][-1]
    assert "4" in retried.args["text"] and "failed" not in retried.args["text"].lower()


async def test_rate_limit_storm_and_5xx_bursts_lose_nothing(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """429 storms and 5xx bursts on every platform during a handoff: each item ends done or reported failed."""
    seed_holdings(datadog_fake, kibana_fake, xpanse_fake)
    ts = await start_handoff(bot, slack_fake)
    datadog_fake.rate_limit("/findings/assignee", times=2)
    datadog_fake.fail("/findings/assignee", 503, times=1, body={"errors": ["unavailable"]})
    kibana_fake.fail("/signals/assignees", 503, times=2, body={"error": "busy"})
    xpanse_fake.fail("/update_incident/", 429, times=6, body={"reply": {"err_code": "429", "err_msg": "Too many"}})
    xpanse_fake.fail("/update_incident/", 500, times=30, body={"reply": {"err_code": "500", "err_msg": "boom"}})
    await bot.click_on_card(ActionId.HANDOFF_CONFIRM, channel=CHANNEL, ts=ts, user=ALICE)
    await bot.settle(timeout=60)
    jobs = [e for e in await bot.svc.jobs.ledger_since(0) if e.verb == "handoff" and e.target]
    assert len(jobs) == TOTAL
    assert {e.outcome for e in jobs} <= {"done", "failed"}
    failed = [e for e in jobs if e.outcome == "failed"]
    assert all(e.detail for e in failed)
    for e in jobs:
        if e.outcome == "done":
            assert e.after in (DD_BOB, KB_BOB, "bob@example.com")
    result = [c for c in slack_fake.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    assert len(result) == 2  # the outcome, then every item paged (the CSV carries them all)
    if failed:
        assert f"Retry {len(failed)} failed" in json.dumps(result[0].args["blocks"])


async def test_handoff_of_someone_else_needs_an_admin(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """`/triage handoff @alice to @bob` by a non-admin is refused, recorded in the ledger, and collects nothing."""
    seed_holdings(datadog_fake, kibana_fake, xpanse_fake)
    resp = await bot.command(f"handoff <@{ALICE}|alice> to <@{BOB}|bob>", user=CAROL)
    assert "admin" in resp.text.lower() or "not allowed" in resp.text.lower(), resp.text
    await bot.settle()
    assert writes(datadog_fake, kibana_fake, xpanse_fake) == (0, 0, 0)
    assert datadog_fake.calls("/findings/search") == []
    refused = [e for e in await bot.svc.jobs.ledger_since(0) if e.outcome == "refused"]
    assert [(e.actor_id, e.verb) for e in refused] == [(CAROL, "handoff")]
