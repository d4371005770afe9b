"""The hot requests (``/triage`` and the card's buttons) answered without Bolt's dispatch."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.app import hot_routes
from bot.sandbox import payloads
from bot.slack.hot import FORM_BUTTONS, JOB_BUTTONS
from bot.slack.ids import ActionId, CallbackId
from tests.scenario.harness import CHANNEL, PAYLOADS, TEAM, BotHarness

HOT_LISTENERS = {"bot.slack.listeners.on_triage", "bot.slack.listeners.on_button", "bot.slack.listeners.on_form_button"}


async def bolts_choice(bot: BotHarness, body: dict[str, Any]) -> str | None:
    """The name of the listener Bolt's own matchers give ``body`` to (the first that matches)."""
    request = AsyncBoltRequest(body=body, mode="socket_mode")
    for listener in bot.bolt._async_listeners:
        if await listener.async_matches(req=request, resp=BoltResponse(status=200)):
            function = listener.ack_function
            return f"{function.__module__}.{function.__name__}"
    return None


def bodies() -> list[tuple[str, dict[str, Any]]]:
    """Every kind of request the bot takes: each button, commands, modals, shortcuts, events, Slack's samples."""
    out: list[tuple[str, dict[str, Any]]] = []
    for action_id in ActionId:
        body = payloads.block_actions(
            action=payloads.button(action_id.value, "{}"),
            user_id="U0ALICE",
            team_id=TEAM,
            channel_id=CHANNEL,
            message={"ts": "1700000000.000100", "type": "message", "blocks": []},
            response_url="https://hooks.slack.com/actions/T1/1/x",
            trigger_id="t.1",
        )
        out.append((f"click {action_id.value}", body))
    for command in ("/triage", "/other"):
        fields = payloads.slash_command(
            text="help",
            user_id="U0ALICE",
            team_id=TEAM,
            channel_id=CHANNEL,
            response_url="https://hooks.slack.com/commands/T1/1/x",
            trigger_id="t.2",
            command=command,
        )
        out.append((f"command {command}", dict(fields)))
    for callback in CallbackId:
        view = {"id": "V1", "type": "modal", "callback_id": callback.value, "private_metadata": "{}"}
        out.append(
            (
                f"view {callback.value}",
                payloads.view_submission(
                    view=view, values={}, user_id="U0ALICE", team_id=TEAM, trigger_id="t.3", view_id="V1", view_hash="h"
                ),
            )
        )
    out.append(
        ("event", payloads.event_callback(payloads.app_home_opened(user_id="U0ALICE"), team_id=TEAM, event_id="E1"))
    )
    for path in sorted(PAYLOADS.glob("*.json")):
        sample = json.loads(path.read_text())
        if isinstance(sample, dict) and ("type" in sample or "command" in sample):
            out.append((path.name, sample))
    return out


async def test_the_hot_routes_take_exactly_the_requests_bolt_gives_their_listeners(bot: BotHarness) -> None:
    """What skips Bolt's dispatch is what Bolt's own matchers hand to ``on_triage`` or a card button."""
    hot = hot_routes(bot.bolt)
    assert hot is not None
    taken = []
    for name, body in bodies():
        choice = await bolts_choice(bot, body)
        assert (hot.route(body) is not None) == (choice in HOT_LISTENERS), f"{name}: Bolt picks {choice}"
        if choice in HOT_LISTENERS:
            taken.append(name)
    assert "command /triage" in taken and "command /other" not in taken
    clicks = sorted(n.removeprefix("click ") for n in taken if n.startswith("click "))
    assert clicks == sorted([*JOB_BUTTONS, *FORM_BUTTONS])
    # Buttons on messages the bot posts for other purposes (handoff, undo, digests, links) stay with Bolt.
    assert "click handoff_confirm" not in taken and "click open_link" not in taken


async def test_a_hot_request_that_fails_is_answered_like_any_listener_error(bot: BotHarness) -> None:
    """A failure the actor cannot fix: the command's reply gives a reference; nothing is half stored."""
    db = bot.settings.triage_db
    assert db.endswith(".db"), db
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE jobs RENAME TO jobs_away")
    try:
        resp = await bot.command("unassign dd:AbCdEfGhIjKlMnOp")
    finally:
        with sqlite3.connect(db) as conn:
            conn.execute("ALTER TABLE jobs_away RENAME TO jobs")
    assert resp.status_code == 200
    text = resp.text  # a reply of text only is sent as plain text, as Bolt sends it
    assert text.startswith("That did not work (reference ") and "Traceback" not in text
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM job_items").fetchone() == (0,)
    # The same command afterwards is stored and acknowledged as usual.
    again = await bot.command("unassign dd:AbCdEfGhIjKlMnOp")
    assert again.status_code == 200
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone() == (1,)
    await bot.settle()
