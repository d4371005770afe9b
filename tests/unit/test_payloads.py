"""The one Slack payload builder against Slack's own samples, and the layering it serves."""

from __future__ import annotations

import ast
import json
import urllib.parse
from pathlib import Path
from typing import Any

from slack_sdk.signature import SignatureVerifier

from bot.sandbox import payloads

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO.parent / "shared" / "slack" / "payloads"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def test_signature_matches_slacks_published_test_vector() -> None:
    """signature_headers reproduces the X-Slack-Signature of Slack's signing walk-through."""
    vector = sample("signing_test_vector.json")
    headers = payloads.signature_headers(
        vector["body"], vector["signing_secret"], timestamp=int(vector["x_slack_request_timestamp"])
    )
    assert headers["X-Slack-Signature"] == vector["expected_x_slack_signature"]
    assert headers["X-Slack-Request-Timestamp"] == vector["x_slack_request_timestamp"]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_signed_bodies_verify_with_slack_sdk() -> None:
    """A body signed now passes slack_sdk's own verifier, as Bolt checks it."""
    body = payloads.form_body({"text": "assign dd:abc to me", "command": "/triage"})
    headers = payloads.signature_headers(body, "s3cret")
    assert SignatureVerifier("s3cret").is_valid_request(body, headers)


def test_slash_command_has_exactly_slacks_form_fields_as_strings() -> None:
    """A slash command carries the sample's fields, every value a string, and round-trips the form."""
    fields = payloads.slash_command(
        text="show dd:x", user_id="U1", team_id="T1", channel_id="C1", response_url="http://r", trigger_id="1.2"
    )
    assert set(fields) == set(sample("slash_command.json")) == set(sample("shapes/SlashCommandPayload.json"))
    assert all(isinstance(v, str) for v in fields.values())
    assert dict(urllib.parse.parse_qsl(payloads.form_body(fields), keep_blank_values=True)) == fields


def test_block_actions_has_the_samples_keys_and_points_at_the_message() -> None:
    """A button press has every top-level key of bolt-python's sample and a consistent container."""
    body = payloads.block_actions(
        action=payloads.button("assign_me", "v1"),
        user_id="U1",
        team_id="T1",
        channel_id="C1",
        message={"ts": "1.000100", "text": "card", "blocks": []},
        response_url="http://r",
        trigger_id="t",
    )
    real = sample("block_actions.message.json")
    assert set(real) <= set(body)
    assert set(real["actions"][0]) <= set(body["actions"][0]) | {"text"}
    assert body["container"] == {"type": "message", "message_ts": "1.000100", "channel_id": "C1", "is_ephemeral": False}
    decoded = json.loads(urllib.parse.unquote(payloads.interactive_body(body).removeprefix("payload=")))
    assert decoded == body


def test_view_submission_keeps_the_bots_view_and_sets_the_state() -> None:
    """A modal submission has the sample's keys and view keys, the bot's own view fields and the values."""
    real = sample("view_submission.json")
    opened = {k: real["view"][k] for k in ("type", "blocks", "title", "submit", "close", "callback_id")}
    values = {"b": {"a": {"type": "plain_text_input", "value": "x"}}}
    body = payloads.view_submission(view=opened, values=values, user_id="U1", team_id="T1", trigger_id="t")
    assert set(real) <= set(body)
    assert set(real["view"]) <= set(body["view"])
    assert body["view"]["callback_id"] == "view-id" and body["view"]["state"] == {"values": values}


def test_message_action_has_the_samples_keys() -> None:
    """A message shortcut has every top-level key of bolt-python's sample, aimed at the message."""
    message = {"type": "message", "text": "look at xpanse:1", "ts": "2.000200", "user": "U2"}
    body = payloads.message_action(
        callback_id="triage_message",
        message=message,
        user_id="U1",
        team_id="T1",
        channel_id="C1",
        trigger_id="t",
        response_url="http://r",
    )
    assert set(sample("message_action.json")) <= set(body)
    assert body["message_ts"] == "2.000200" and body["message"] == message


def test_global_shortcut_and_socket_envelope_have_the_samples_keys() -> None:
    """A global shortcut and a Socket Mode envelope carry the keys of Slack's samples."""
    shortcut = payloads.global_shortcut(callback_id="c", user_id="U1", team_id="T1", trigger_id="t")
    assert set(sample("shortcut.global.json")) <= set(shortcut)
    envelope = payloads.socket_envelope("interactive", shortcut, envelope_id="e1")
    assert set(sample("socket_mode.envelopes.json")["envelopes"][0]) <= set(envelope)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_bench_and_the_product_never_import_tests_or_openapi_core() -> None:
    """bench/ and bot/ import neither the tests nor the contract checker: they use bot.sandbox."""
    for path in [*(REPO / "bench").rglob("*.py"), *(REPO / "bot").rglob("*.py")]:
        bad = {n for n in _imports(path) if n.split(".")[0] in ("tests", "openapi_core")}
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"
