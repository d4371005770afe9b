"""Slash commands end to end: signed form posts in, platform writes and Slack replies out.

A command's result that is not about a card lands as a message in the channel whose
thread holds the per-item detail; what only the actor needs (usage errors, refusals,
history, whoami) stays ephemeral, in the ack or through the command's response_url.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tests.fakes.contract import Recorded
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import KibanaFake
from tests.fakes.slack import SlackCall, SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import ALICE, BOB, CAROL, DD_ALICE, DD_BOB, KB_ALICE, KB_BOB, MakeBot
from tests.scenario.harness import CHANNEL, BotHarness

FINDING = "ZGVmLTAwcC1pZXJ-aS0wZjhjNjMyZDNmMzRlZTgzNw=="
FINDING2 = "ZGVmLTAwcC1hYmMtMDAwMDAwMDAwMDAwMDAwMQ=="
CASE_UUID = "4b1c9d2e-0000-4000-8000-00000000c0de"


def outcome_posts(slack: SlackFake) -> tuple[SlackCall, SlackCall]:
    """The summary in the channel and the detail in its thread, checked to be exactly that."""
    posts = slack.calls_to("chat.postMessage")
    assert len(posts) == 2, [p.args.get("text") for p in posts]
    parent, detail = posts
    assert parent.args["channel"] == CHANNEL and not parent.args.get("thread_ts")
    parent_ts = next(m["ts"] for m in slack.messages_in(CHANNEL) if not m.get("thread_ts"))
    assert detail.args["channel"] == CHANNEL and detail.args["thread_ts"] == parent_ts
    return parent, detail


def blocks_text(args: dict[str, Any]) -> str:
    return str(args.get("blocks"))


async def test_assign_mixed_platforms_by_slash_command(
    bot: BotHarness,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    xpanse_fake: XpanseFake,
) -> None:
    """`/triage assign dd:… kibana:secops/… xpanse:… to @bob` assigns on all three and threads the outcome."""
    datadog_fake.add_finding(FINDING, title="Public S3 bucket", severity="high")
    kibana_fake.add_alert("a1", space="secops", rule_name="Brute force", severity="high")
    xpanse_fake.add_incident("5471", description="Exposed RDP")
    resp = await bot.command(f"assign dd:{FINDING} kibana:secops/a1 xpanse:5471 to <@{BOB}|bob>")
    assert resp.status_code == 200
    assert resp.text == "On it: assign 3 items."
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_BOB
    assert kibana_fake.alerts["secops"]["a1"]["kibana.alert.workflow_assignee_ids"] == [KB_BOB]
    assert xpanse_fake.incidents["5471"].assigned_user_mail == "bob@example.com"
    parent, detail = outcome_posts(slack_fake)
    assert parent.args["text"].startswith(f"<@{ALICE}> assigned 3 items to <@{BOB}>")
    assert "(3 done)" in detail.args["text"]
    for key in (f"dd:{FINDING}", "kibana:secops/a1", "xpanse:5471"):
        assert key in blocks_text(detail.args)


async def test_assign_single_item(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """`/triage assign kibana:<id> @bob` assigns one alert in the default space."""
    kibana_fake.add_alert("a9")
    resp = await bot.command(f"assign kibana:a9 <@{BOB}>")
    assert resp.text == "On it: assign 1 item."
    await bot.settle()
    assert kibana_fake.assignees("a9") == [KB_BOB]
    _, detail = outcome_posts(slack_fake)
    assert "(1 done)" in detail.args["text"]


async def test_alice_assigns_to_herself_then_mapping_is_remembered(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """`me` resolves by Slack email once; the second action needs no users.info call."""
    datadog_fake.add_finding(FINDING)
    await bot.command(f"assign dd:{FINDING} to me", user=ALICE)
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE
    calls = len(slack_fake.calls_to("users.info"))
    assert calls >= 1
    await bot.command(f"unassign dd:{FINDING}", user=ALICE)
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] is None
    await bot.command(f"assign dd:{FINDING} to me", user=ALICE)
    await bot.settle()
    assert len(slack_fake.calls_to("users.info")) == calls
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE


async def test_unassign(bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake) -> None:
    """`/triage unassign xpanse:…` clears the incident's assignee and threads the outcome."""
    xpanse_fake.add_incident("5480", assigned_user_mail="bob@example.com", assigned_user_pretty_name="Bob")
    await bot.command("unassign xpanse:5480")
    await bot.settle()
    assert not xpanse_fake.incidents["5480"].assigned_user_mail
    parent, _ = outcome_posts(slack_fake)
    assert parent.args["text"].startswith(f"<@{ALICE}> unassigned 1 item")


async def test_attach_by_case_key_resolves_the_uuid(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """`/triage attach dd:… to case SEC-123` looks the key up and attaches by the case's UUID."""
    datadog_fake.add_finding(FINDING)
    datadog_fake.add_finding(FINDING2)
    datadog_fake.add_case(CASE_UUID, "SEC-123")
    resp = await bot.command(f"attach dd:{FINDING} dd:{FINDING2} to case sec-123")
    assert resp.text == "On it: attach 2 items."
    await bot.settle()
    assert [r.path for r in datadog_fake.calls("/cases")] == [
        "/api/v2/cases/SEC-123",
        f"/api/v2/security/findings/cases/{CASE_UUID}",
    ]
    assert datadog_fake.findings[FINDING]["case_id"] == CASE_UUID
    assert datadog_fake.findings[FINDING2]["case_id"] == CASE_UUID
    parent, _ = outcome_posts(slack_fake)
    assert parent.args["text"].startswith(f"<@{ALICE}> attached 2 items to case SEC-123")


async def test_attach_more_than_fifty_is_refused_before_any_call(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """Attaching 51 findings answers with the limit and the usage line, and calls no platform."""
    many = " ".join(f"dd:F{i:03d}AAAA" for i in range(51))
    resp = await bot.command(f"attach {many} case SEC-123")
    body = resp.json()
    assert "at most 50 findings" in body["text"] and "you gave 51" in body["text"]
    assert "Usage:" in body["text"] and "/triage attach" in body["text"]
    assert body.get("response_type", "ephemeral") == "ephemeral"
    await bot.settle()
    assert datadog_fake.requests == []
    assert slack_fake.calls_to("chat.postMessage") == []


async def test_resolve_kibana_with_reason(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """`/triage resolve kibana:… reason false_positive` closes the alert with that reason."""
    kibana_fake.add_alert("a1", space="secops")
    await bot.command("resolve kibana:secops/a1 reason false_positive")
    await bot.settle()
    assert kibana_fake.status("a1", space="secops") == "closed"
    (write,) = kibana_fake.writes()
    assert write.body["reason"] == "false_positive" and write.body["status"] == "closed"
    parent, detail = outcome_posts(slack_fake)
    assert parent.args["text"].startswith(f"<@{ALICE}> resolved 1 item")
    assert "closed (false_positive)" in blocks_text(detail.args)


async def test_resolve_xpanse_with_comment(bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake) -> None:
    """`/triage resolve xpanse:… reason … -- text` resolves with that status and resolve_comment."""
    xpanse_fake.add_incident("5471")
    await bot.command('resolve xpanse:5471 reason resolved_-_no_risk -- "firewalled, test box"')
    await bot.settle()
    incident = xpanse_fake.incidents["5471"]
    assert incident.status == "resolved_-_no_risk"
    assert incident.resolve_comment == "firewalled, test box"
    _, detail = outcome_posts(slack_fake)
    assert "(1 done)" in detail.args["text"]


async def test_comment_on_xpanse(bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake) -> None:
    """`/triage comment xpanse:… text` adds the comment to the incident once."""
    xpanse_fake.add_incident("5472")
    await bot.command("comment xpanse:5472 owner contacted, patch Friday")
    await bot.settle()
    assert xpanse_fake.incidents["5472"].comments == ["owner contacted, patch Friday"]
    parent, _ = outcome_posts(slack_fake)
    assert parent.args["text"].startswith(f"<@{ALICE}> commented on 1 item")


async def test_severity_on_xpanse(bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake) -> None:
    """`/triage severity xpanse:… low` sets the manual severity."""
    xpanse_fake.add_incident("5473", severity="high")
    await bot.command("severity xpanse:5473 low")
    await bot.settle()
    assert xpanse_fake.incidents["5473"].manual_severity == "low"
    parent, _ = outcome_posts(slack_fake)
    assert parent.args["text"].startswith(f"<@{ALICE}> set the severity of 1 item to low")


async def test_show_posts_a_card(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """`/triage show kibana:…` posts the alert's card in the channel (not a thread)."""
    kibana_fake.add_alert("a5", space="secops", rule_name="Credential dumping", severity="critical")
    await bot.command("show kibana:secops/a5")
    await bot.settle()
    (card,) = bot.cards()
    assert "thread_ts" not in card
    assert "Credential dumping" in card["text"] and "kibana:secops/a5" in card["text"]


async def test_history_after_actions(bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake) -> None:
    """`/triage history` lists, newest first, who did what to the item, only to the actor."""
    datadog_fake.add_finding(FINDING)
    await bot.command(f"assign dd:{FINDING} to <@{BOB}>")
    await bot.settle()
    await bot.command(f"unassign dd:{FINDING}", user=BOB)
    await bot.settle()
    posted = len(slack_fake.calls_to("chat.postMessage"))
    resp = await bot.command(f"history dd:{FINDING}")
    text = resp.text
    assert text.startswith(f"History of `dd:{FINDING}`")
    lines = text.splitlines()[1:]
    assert len(lines) == 2
    assert f"<@{BOB}> unassign: done" in lines[0]
    assert f"<@{ALICE}> assign: done" in lines[1] and DD_BOB in lines[1]
    assert len(slack_fake.calls_to("chat.postMessage")) == posted  # nothing in the channel


async def test_history_of_an_untouched_item(bot: BotHarness) -> None:
    """`/triage history` of an item the bot never touched says so."""
    resp = await bot.command("history xpanse:999")
    assert resp.text == "The bot has no history for `xpanse:999`."


async def test_whoami_shows_each_platform(bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake) -> None:
    """`/triage whoami` answers ephemerally with each platform's identity, where it came from and if it holds."""
    datadog_fake.add_finding(FINDING)
    await bot.command(f"assign dd:{FINDING} to me")  # maps Alice on Datadog by e-mail
    await bot.settle()
    resp = await bot.command("whoami")
    assert "Checking" in resp.text
    await bot.settle()
    (body,) = slack_fake.responses
    assert body["response_type"] == "ephemeral"
    text = blocks_text(body)
    assert f"*Datadog*: `{DD_ALICE}` (found by Slack e-mail just now) · :white_check_mark: still valid" in text
    assert "*Kibana*: not mapped yet" in text and "kibana=u_…" in text
    assert "Platform." not in text and "None" not in text


async def test_map_and_unmap_self(bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake) -> None:
    """`/triage map @me kibana=…` stores the mapping (then used to assign), `unmap` removes it."""
    kibana_fake.add_alert("a7")
    kibana_fake.add_alert("a8")
    resp = await bot.command(f"map <@{ALICE}> kibana={KB_BOB}")
    assert resp.text == f"Mapped <@{ALICE}>: Kibana: `{KB_BOB}`"
    await bot.command("assign kibana:a7 to me")
    await bot.settle()
    # The explicit mapping wins over the e-mail look-up.
    assert kibana_fake.assignees("a7") == [KB_BOB]
    resp = await bot.command(f"unmap <@{ALICE}> kibana")
    assert resp.text == f"Removed <@{ALICE}>'s Kibana mapping."
    resp = await bot.command(f"unmap <@{ALICE}> kibana")
    assert resp.text == f"<@{ALICE}> had no Kibana mapping."
    # Unmapped again, `me` is looked up by e-mail.
    await bot.command("assign kibana:a8 to me")
    await bot.settle()
    assert kibana_fake.assignees("a8") == [KB_ALICE]


async def test_mapping_someone_else_is_refused_by_default(bot: BotHarness, slack_fake: SlackFake) -> None:
    """Without a policy naming admins, `/triage map @bob …` is refused and nothing is stored."""
    resp = await bot.command(f"map <@{BOB}> datadog={DD_ALICE}")
    assert "admins" in resp.text and "Mapped" not in resp.text
    resp = await bot.command(f"unmap <@{BOB}> datadog", user=ALICE)
    assert "admins" in resp.text
    assert (await bot.svc.mappings.get("T111", BOB)).identities == []


async def test_help_lists_every_verb(bot: BotHarness) -> None:
    """`/triage help` answers with the grammar of every verb, escaped for mrkdwn."""
    resp = await bot.command("help")
    body = resp.json()
    for verb in (
        "assign",
        "unassign",
        "attach",
        "resolve",
        "comment",
        "severity",
        "show",
        "handoff",
        "history",
        "mine",
        "map",
        "unmap",
        "whoami",
    ):
        assert f"/triage {verb}" in str(body["blocks"])
    assert "&lt;targets…&gt;" in str(body["blocks"])


async def test_usage_error_is_ephemeral_and_changes_nothing(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """A malformed command gets the verb's usage in the ack and makes no platform call."""
    resp = await bot.command("assign dd:abc")
    assert resp.status_code == 200
    body = resp.json()
    assert "Usage:" in body["text"] and "/triage assign" in body["text"]
    assert body.get("response_type", "ephemeral") == "ephemeral"
    resp = await bot.command("frobnicate dd:abc")
    assert "Unknown command `frobnicate`" in resp.json()["text"]
    await bot.settle()
    assert datadog_fake.requests == []
    assert slack_fake.calls_to("chat.postMessage") == []


async def test_bad_signature_is_refused_and_nothing_runs(bot: BotHarness, datadog_fake: DatadogFake) -> None:
    """A request signed with the wrong secret gets 401 and nothing executes."""
    datadog_fake.add_finding(FINDING)
    resp = await bot.command(f"assign dd:{FINDING} to me", secret="not-the-secret")
    assert resp.status_code == 401
    await bot.settle()
    assert datadog_fake.requests == []


async def test_unmapped_user_gets_actionable_message(
    bot: BotHarness, slack_fake: SlackFake, kibana_fake: KibanaFake
) -> None:
    """Assigning to someone with no Kibana profile reports how to map them, per item, in the thread."""
    kibana_fake.add_alert("a2", rule_name="Malware")
    await bot.command(f"assign kibana:a2 to <@{CAROL}>")
    await bot.settle()
    _, detail = outcome_posts(slack_fake)
    # The person is named as a mention, and the fix is a command they can copy.
    assert f"<@{CAROL}> has no Kibana profile mapped" in blocks_text(detail.args)
    assert f"`/triage map <@{CAROL}> kibana=u_…`" in blocks_text(detail.args)
    assert "kibana:a2" in blocks_text(detail.args)
    assert kibana_fake.assignees("a2") == []


async def test_platform_not_configured(
    make_bot: MakeBot, slack_fake: SlackFake, datadog_fake: DatadogFake, kibana_fake: KibanaFake
) -> None:
    """With Kibana unconfigured, a Kibana-only command says so at once; a mixed one skips Kibana per item."""
    bot = await make_bot(kibana=False)
    datadog_fake.add_finding(FINDING)
    kibana_fake.add_alert("a3")
    resp = await bot.command("assign kibana:a3 to me")
    assert "Kibana is not configured" in resp.text
    await bot.settle()
    assert slack_fake.calls_to("chat.postMessage") == []
    await bot.command(f"assign dd:{FINDING} kibana:a3 to me")
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_ALICE
    _, detail = outcome_posts(slack_fake)
    assert "Kibana is not configured" in blocks_text(detail.args)
    assert kibana_fake.requests == []


async def test_platform_down_is_reported_per_item(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake, xpanse_fake: XpanseFake
) -> None:
    """Datadog answering 500 to every retry fails only its item, with the status, never a stack trace."""
    datadog_fake.add_finding(FINDING)
    xpanse_fake.add_incident("5490")
    datadog_fake.fail("/findings/assignee", 500, times=100, body={"errors": ["Internal Server Error"]})
    await bot.command(f"assign dd:{FINDING} xpanse:5490 to <@{BOB}>")
    await bot.settle(timeout=20)
    _, detail = outcome_posts(slack_fake)
    assert "1 failed" in detail.args["text"] and "1 done" in detail.args["text"]
    text = blocks_text(detail.args)
    assert f"dd:{FINDING}" in text and "500" in text
    assert "Traceback" not in text and "Exception" not in text
    assert len(datadog_fake.calls("/findings/assignee")) == 3  # TRIAGE_RETRY_ATTEMPTS in the harness


async def test_ack_returns_before_any_platform_call(
    bot: BotHarness, slack_fake: SlackFake, datadog_fake: DatadogFake
) -> None:
    """The slash command is acknowledged while every Datadog call is held open: the ack waits on none."""
    datadog_fake.add_finding(FINDING)
    gate = asyncio.Event()  # Datadog answers nothing until the test opens it
    reached = asyncio.Event()
    answer = datadog_fake.handle

    async def held(path: str, req: Recorded) -> web.StreamResponse:
        reached.set()
        await gate.wait()
        return await answer(path, req)

    datadog_fake.handle = held  # type: ignore[method-assign]
    try:
        # Were the ack waiting on Datadog, this would hang until the gate opens and time out.
        resp = await asyncio.wait_for(bot.command(f"assign dd:{FINDING} to <@{BOB}>"), 5)
        assert resp.text == "On it: assign 1 item."
        # The job is genuinely running: its first Datadog call is in flight, unanswered.
        await asyncio.wait_for(reached.wait(), 5)
        assert datadog_fake.findings[FINDING]["assignee_id"] is None
        assert slack_fake.calls_to("chat.postMessage") == []
    finally:
        gate.set()
    await bot.settle()
    assert datadog_fake.findings[FINDING]["assignee_id"] == DD_BOB
    assert len(slack_fake.calls_to("chat.postMessage")) == 2


async def test_duplicate_delivery_runs_once(bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake) -> None:
    """Slack retrying the same command (same trigger) queues one job: one comment, one outcome."""
    xpanse_fake.add_incident("5495")
    # Build one signed body and send it twice, as a Slack retry would.
    import time
    import urllib.parse

    from tests.scenario.harness import TEAM, payload

    fields = payload("slash_command.json")
    fields.update(
        {
            "command": "/triage",
            "text": "comment xpanse:5495 once only",
            "user_id": ALICE,
            "channel_id": CHANNEL,
            "team_id": TEAM,
            "response_url": slack_fake.webhook_url("dup"),
            "trigger_id": f"trigger.dup.{time.monotonic_ns()}",
        }
    )
    body = urllib.parse.urlencode(fields)
    first = await bot.post_raw(body)
    second = await bot.post_raw(body)
    assert first.status_code == second.status_code == 200
    await bot.settle()
    assert xpanse_fake.incidents["5495"].comments == ["once only"]
    assert len(slack_fake.calls_to("chat.postMessage")) == 2


async def test_outcome_goes_through_response_url_where_the_bot_cannot_post(
    bot: BotHarness, slack_fake: SlackFake, xpanse_fake: XpanseFake
) -> None:
    """In a channel the bot is not in, the whole outcome, per-item lines included, arrives via response_url."""
    xpanse_fake.add_incident("5501")
    xpanse_fake.add_incident("5502")
    slack_fake.fail("chat.postMessage", "not_in_channel")
    await bot.command("severity xpanse:5501 medium")
    await bot.settle()
    (body,) = await slack_fake.wait_for_responses(1)
    assert body["response_type"] == "in_channel"
    assert body["text"].startswith(f"<@{ALICE}> set the severity of 1 item to medium")
    assert "xpanse:5501" in str(body["blocks"])  # the detail, not only the summary
    assert xpanse_fake.incidents["5501"].manual_severity == "medium"
