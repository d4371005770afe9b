"""The one door, proven: every verb from every surface that reaches it is refused alike.

With a policy that makes every verb admin-only, a non-admin who tries any verb from
any surface (slash command, card button, the button that opens a modal, the modal's
submission, the message shortcut, the handoff buttons) gets a clear refusal on that
surface, the refusal is in the ledger, and no platform is called. The admin, on the
same bot, is let through the same door.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bot.core.policy import ACTIONS, ALL_VERBS
from bot.models import Target
from bot.sandbox import payloads
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.metadata import CardRef, DigestMeta, DigestRef, HandoffRef, ModalMeta, UndoRef
from tests.fakes.datadog import DatadogFake
from tests.fakes.kibana import ElasticsearchFake, KibanaFake
from tests.fakes.slack import SlackFake
from tests.fakes.xpanse import XpanseFake
from tests.scenario.conftest import BOB, seed_people
from tests.scenario.harness import CHANNEL, BotHarness, fake_settings

ADMIN = "U0ADMIN"
FINDING = "cG9saWN5LW1hdHJpeC1maW5kaW5n"
CARD_TS = "1700000000.000100"
POLICY = "admins:\n  users: [U0ADMIN]\nverbs:\n" + "".join(f"  {verb}: {{}}\n" for verb in ALL_VERBS)


@dataclass
class World:
    bot: BotHarness
    slack: SlackFake
    platforms: tuple[DatadogFake, KibanaFake, ElasticsearchFake, XpanseFake]

    def platform_calls(self) -> int:
        return sum(len(fake.requests) for fake in self.platforms)

    def reset(self) -> None:
        for fake in self.platforms:
            fake.requests.clear()


@pytest_asyncio.fixture
async def world(
    tmp_path: Path,
    slack_fake: SlackFake,
    datadog_fake: DatadogFake,
    kibana_fake: KibanaFake,
    elasticsearch_fake: ElasticsearchFake,
    xpanse_fake: XpanseFake,
) -> AsyncIterator[World]:
    """The bot with every verb admin-only, and one item on each platform."""
    seed_people(slack_fake, datadog_fake, elasticsearch_fake, xpanse_fake)
    slack_fake.add_user(ADMIN, email="admin@example.com", real_name="Ada Admin")
    datadog_fake.add_finding(FINDING)
    kibana_fake.add_alert("m1")
    xpanse_fake.add_incident("77")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = fake_settings(
        db=str(tmp_path / "triage.db"),
        slack=slack_fake,
        datadog=datadog_fake,
        kibana=kibana_fake,
        es=elasticsearch_fake,
        xpanse=xpanse_fake,
        triage_policy=str(policy),
    )
    harness = await BotHarness(settings, slack_fake).start()
    w = World(harness, slack_fake, (datadog_fake, kibana_fake, elasticsearch_fake, xpanse_fake))
    w.reset()
    try:
        yield w
    finally:
        await harness.stop()
    harness.assert_block_kit()


def card(target: str) -> str:
    return CardRef(target=Target.from_key(target), channel=CHANNEL, ts=CARD_TS).dumps()


def modal(callback: CallbackId, verb: str, target: str) -> dict[str, Any]:
    meta = ModalMeta.model_validate({"v": verb, "t": [target], "c": CHANNEL, "ts": CARD_TS})
    return {"callback_id": callback.value, "private_metadata": meta.dumps()}


Send = Callable[[BotHarness, str], Awaitable[httpx.Response]]


def slash(text: str) -> Send:
    async def send(bot: BotHarness, user: str) -> httpx.Response:
        return await bot.command(text, user=user)

    return send


def button(action_id: ActionId, value: str) -> Send:
    async def send(bot: BotHarness, user: str) -> httpx.Response:
        return await bot.click(action_id.value, value, user=user, message_ts=CARD_TS)

    return send


def submit(view: dict[str, Any], values: dict[str, dict[str, Any]]) -> Send:
    async def send(bot: BotHarness, user: str) -> httpx.Response:
        return await bot.submit_view(view, values, user=user)

    return send


def shortcut(text: str) -> Send:
    async def send(bot: BotHarness, user: str) -> httpx.Response:
        return await bot.shortcut({"type": "message", "ts": "1700000000.000200", "text": text}, user=user)

    return send


async def seed_digest(bot: BotHarness) -> str:
    """A stored digest listing the Kibana and Xpanse items (as a storm would leave one)."""
    rows = [(Target.from_key("kibana:m1"), "high", "m1"), (Target.from_key("xpanse:77"), "low", "77")]
    return await bot.svc.intake.new_digest(CHANNEL, rows)


def digest_button(action_id: ActionId) -> Send:
    async def send(bot: BotHarness, user: str) -> httpx.Response:
        ref = DigestRef(id=await seed_digest(bot)).dumps()
        return await bot.click(action_id.value, ref, user=user, message_ts=CARD_TS)

    return send


def digest_submit(callback: CallbackId, verb: str, values: dict[str, dict[str, Any]]) -> Send:
    async def send(bot: BotHarness, user: str) -> httpx.Response:
        meta = DigestMeta.model_validate({"v": verb, "d": await seed_digest(bot), "c": CHANNEL, "ts": CARD_TS})
        view = {"callback_id": callback.value, "private_metadata": meta.dumps()}
        return await bot.submit_view(view, values, user=user)

    return send


def home_opened() -> Send:
    async def send(bot: BotHarness, user: str) -> httpx.Response:
        return await bot.event(payloads.app_home_opened(user_id=user))

    return send


def link_pasted(url: str) -> Send:
    async def send(bot: BotHarness, user: str) -> httpx.Response:
        return await bot.event(payloads.link_shared(user_id=user, channel=CHANNEL, message_ts=CARD_TS, urls=[url]))

    return send


HANDOFF = HandoffRef(id="job-that-does-not-matter").dumps()
ASSIGN_VALUES = {
    BlockId.ASSIGN_USER.value: {ActionId.ASSIGN_USER.value: {"type": "users_select", "selected_user": BOB}}
}
ATTACH_VALUES = {
    BlockId.ATTACH_CASE.value: {ActionId.ATTACH_CASE.value: {"type": "plain_text_input", "value": "SEC-1"}}
}
RESOLVE_VALUES = {
    BlockId.RESOLVE_REASON.value: {
        ActionId.RESOLVE_REASON.value: {"type": "static_select", "selected_option": {"value": "false_positive"}}
    }
}
MUTE_VALUES: dict[str, dict[str, Any]] = {
    BlockId.MUTE_REASON.value: {
        ActionId.MUTE_REASON.value: {"type": "static_select", "selected_option": {"value": "risk_accepted"}}
    },
    BlockId.MUTE_UNTIL.value: {ActionId.MUTE_UNTIL.value: {"type": "datepicker", "selected_date": "2099-01-31"}},
}
TAG_VALUES = {BlockId.TAG_CHANGES.value: {ActionId.TAG_CHANGES.value: {"type": "plain_text_input", "value": "+x"}}}
DIGEST_RESOLVE_VALUES = {
    BlockId.DIGEST_REASON_KIBANA.value: {
        ActionId.RESOLVE_REASON.value: {"type": "static_select", "selected_option": {"value": "false_positive"}}
    }
}
DIGEST_SHOW_VALUES = {
    BlockId.DIGEST_ROWS.value: {
        ActionId.DIGEST_ROWS.value: {"type": "multi_static_select", "selected_options": [{"value": "0"}]}
    }
}

# (surface, policy verb the refusal names, how to send it, how the refusal comes back)
CASES: list[tuple[str, str, Send, str]] = [
    ("slash", "assign", slash("assign kibana:m1 to me"), "ack"),
    ("slash", "unassign", slash("unassign kibana:m1"), "ack"),
    ("slash", "attach", slash(f"attach dd:{FINDING} to case SEC-1"), "ack"),
    ("slash", "resolve", slash("resolve kibana:m1"), "ack"),
    ("slash", "resolve", slash(f"resolve dd:{FINDING} reason other for 30d"), "ack"),
    ("slash", "reopen", slash(f"reopen dd:{FINDING} kibana:m1 xpanse:77"), "ack"),
    ("slash", "ack", slash("ack kibana:m1"), "ack"),
    ("slash", "tag", slash("tag kibana:m1 +triaged -noise"), "ack"),
    ("slash", "detach", slash(f"detach dd:{FINDING}"), "ack"),
    ("slash", "comment", slash("comment xpanse:77 looking at it"), "ack"),
    ("slash", "severity", slash("severity xpanse:77 low"), "ack"),
    ("slash", "show", slash("show kibana:m1"), "ack"),
    ("slash", "handoff", slash(f"handoff to <@{ADMIN}>"), "ack"),
    ("slash", "history", slash("history kibana:m1"), "ack"),
    ("slash", "mine", slash("mine"), "ack"),
    ("slash", "map", slash("map me xpanse=bob@example.com"), "ack"),
    ("slash", "unmap", slash("unmap me xpanse"), "ack"),
    ("slash", "whoami", slash("whoami"), "ack"),
    ("slash", "help", slash("help"), "ack"),
    ("slash", "oncall", slash("oncall"), "ack"),
    ("slash", "map_others", slash(f"map <@{ADMIN}> xpanse=admin@example.com"), "ack"),
    ("slash", "handoff_others", slash(f"handoff <@{ADMIN}> to <@{BOB}>"), "ack"),
    ("button", "assign", button(ActionId.ASSIGN_ME, card("kibana:m1")), "ephemeral"),
    ("button", "unassign", button(ActionId.UNASSIGN, card("kibana:m1")), "ephemeral"),
    ("button", "refresh", button(ActionId.REFRESH, card("kibana:m1")), "ephemeral"),
    ("button", "assign", button(ActionId.ASSIGN_OPEN, card("kibana:m1")), "ephemeral"),
    ("button", "attach", button(ActionId.ATTACH_OPEN, card(f"dd:{FINDING}")), "ephemeral"),
    ("button", "resolve", button(ActionId.RESOLVE_OPEN, card("kibana:m1")), "ephemeral"),
    ("button", "resolve", button(ActionId.MUTE_OPEN, card(f"dd:{FINDING}")), "ephemeral"),
    ("button", "reopen", button(ActionId.UNMUTE, card(f"dd:{FINDING}")), "ephemeral"),
    ("button", "reopen", button(ActionId.REOPEN, card("kibana:m1")), "ephemeral"),
    ("button", "ack", button(ActionId.ACK, card("kibana:m1")), "ephemeral"),
    ("button", "detach", button(ActionId.DETACH, card(f"dd:{FINDING}")), "ephemeral"),
    ("button", "tag", button(ActionId.TAG_OPEN, card("kibana:m1")), "ephemeral"),
    ("button", "handoff", button(ActionId.HANDOFF_CONFIRM, HANDOFF), "ephemeral"),
    ("button", "handoff", button(ActionId.HANDOFF_CANCEL, HANDOFF), "ephemeral"),
    ("button", "handoff", button(ActionId.RETRY_FAILED, HANDOFF), "ephemeral"),
    ("modal", "assign", submit(modal(CallbackId.ASSIGN_MODAL, "assign", "kibana:m1"), ASSIGN_VALUES), "errors"),
    ("modal", "attach", submit(modal(CallbackId.ATTACH_MODAL, "attach", f"dd:{FINDING}"), ATTACH_VALUES), "errors"),
    ("modal", "resolve", submit(modal(CallbackId.RESOLVE_MODAL, "resolve", "kibana:m1"), RESOLVE_VALUES), "errors"),
    ("modal", "resolve", submit(modal(CallbackId.MUTE_MODAL, "resolve", f"dd:{FINDING}"), MUTE_VALUES), "errors"),
    ("modal", "tag", submit(modal(CallbackId.TAG_MODAL, "tag", "kibana:m1"), TAG_VALUES), "errors"),
    ("shortcut", "show", shortcut("look at kibana:m1 please"), "ephemeral"),
    ("button", "assign", digest_button(ActionId.DIGEST_ASSIGN_ME), "ephemeral"),
    ("button", "assign", digest_button(ActionId.DIGEST_ASSIGN_OPEN), "ephemeral"),
    ("button", "resolve", digest_button(ActionId.DIGEST_RESOLVE_OPEN), "ephemeral"),
    ("button", "show", digest_button(ActionId.DIGEST_SHOW_OPEN), "ephemeral"),
    ("modal", "assign", digest_submit(CallbackId.DIGEST_ASSIGN_MODAL, "assign", ASSIGN_VALUES), "errors"),
    ("modal", "resolve", digest_submit(CallbackId.DIGEST_RESOLVE_MODAL, "resolve", DIGEST_RESOLVE_VALUES), "errors"),
    ("modal", "show", digest_submit(CallbackId.DIGEST_SHOW_MODAL, "show", DIGEST_SHOW_VALUES), "errors"),
    ("button", "undo", button(ActionId.UNDO, UndoRef(id="job-that-does-not-matter").dumps()), "ephemeral"),
    ("home", "mine", home_opened(), "home"),
    ("unfurl", "show", link_pasted("https://kibana.example.com/app/security/alerts/redirect/m1"), "nothing"),
]


def test_every_verb_and_surface_is_in_the_matrix() -> None:
    """The matrix names every policy verb a Slack user can reach (import is the CLI's, not Slack's)."""
    covered = {verb for _, verb, _, _ in CASES}
    assert covered == set(ALL_VERBS) - {"import"}
    assert {surface for surface, *_ in CASES} == {"slash", "button", "modal", "shortcut", "home", "unfurl"}


def refusal_text(resp: httpx.Response, how: str, slack: SlackFake) -> str:
    if how == "ack":
        assert resp.status_code == 200
        return resp.text
    if how == "errors":
        body = resp.json()
        assert body["response_action"] == "errors", body
        return " ".join(body["errors"].values())
    if how in ("home", "nothing"):
        assert resp.status_code == 200, resp.text
        return ""
    assert resp.status_code == 200 and resp.text == "", resp.text
    return ""


@pytest.mark.parametrize(
    ("surface", "verb", "send", "how"), CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)]
)
async def test_a_refused_user_is_told_recorded_and_nothing_is_called(
    world: World, surface: str, verb: str, send: Send, how: str
) -> None:
    """A non-admin is refused on the request's own surface, the ledger has it, and no platform is called."""
    responses_before = len(world.slack.responses)
    resp = await send(world.bot, BOB)
    text = refusal_text(resp, how, world.slack)
    if how == "ephemeral":
        found = await world.slack.wait_for_responses(responses_before + 1)
        text = json.dumps(found[responses_before:])
    if how == "home":
        await world.bot.settle()
        text = json.dumps(world.slack.homes[BOB]["blocks"])
    if how == "nothing":
        await world.bot.settle()
        assert not world.slack.calls_to("chat.unfurl")
        text = f"admins may {ACTIONS[verb]}"  # the refusal has no surface to show on; the ledger has it
    assert "admins may" in text.lower() and ACTIONS[verb][:20] in text, text
    await world.bot.settle()
    refused = [e for e in await world.bot.svc.jobs.ledger_since(0) if e.outcome == "refused"]
    assert [(e.actor_id, e.outcome) for e in refused] == [(BOB, "refused")], refused
    assert world.platform_calls() == 0, "a refused request reached a platform"
    assert not world.slack.calls_to("chat.postMessage") and not world.slack.calls_to("views.open")
    assert await world.bot.svc.jobs.unfinished() == []


async def test_the_admin_passes_the_same_door(world: World, kibana_fake: KibanaFake) -> None:
    """The admin, under the same policy, reads and writes: the door refuses by rule, not by surface."""
    resp = await world.bot.command("history kibana:m1", user=ADMIN)
    assert "no history" in resp.text
    resp = await world.bot.command("resolve kibana:m1", user=ADMIN)
    assert "On it" in resp.text
    await world.bot.settle()
    assert kibana_fake.status("m1") == "closed"
    assert [e for e in await world.bot.svc.jobs.ledger_since(0) if e.outcome == "refused"] == []
