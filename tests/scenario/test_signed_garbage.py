"""/slack/events at its edges: signed garbage is a counted 4xx, unsigned stays 401, Slack's own shapes pass."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse

import pytest
import structlog

from bot.slack.inbound import Unusable, inspect
from tests.scenario.harness import PAYLOADS, SIGNING_SECRET, BotHarness, payload
from tests.scenario.test_fuzz_slack_events import rejected_total

GARBAGE = [
    ("payload=", "interactive", "not_json"),
    ("payload=%5B%5D", "interactive", "not_an_object"),
    ("payload=%22a%20string%22", "interactive", "not_an_object"),
    ("payload=%7Bnot%20json", "interactive", "not_json"),
    ('payload={"type":"block_actions","actions":"x","user":{"id":"U1"},"trigger_id":"t"}', "interactive", "bad_field"),
    ('payload={"type":"nonsense","user":{"id":"U1"}}', "interactive", "unknown_type"),
    ("command=%2Ftriage&text=help", "command", "bad_field"),
    ('{"type":"event_callback","event":"x"}', "event", "bad_field"),
    ("[1, 2]", "unknown", "unknown_type"),
    ("", "unknown", "not_an_object"),
]


@pytest.mark.parametrize(("body", "kind", "reason"), GARBAGE)
async def test_signed_garbage_is_a_counted_400_with_one_warning(
    bot: BotHarness, body: str, kind: str, reason: str
) -> None:
    """Each kind of signed garbage gets a 400, one warning line without a traceback, and a count in /metrics."""
    with structlog.testing.capture_logs() as logs:
        resp = await bot.post_raw(body)
    assert resp.status_code == 400, resp.text
    (warning,) = [e for e in logs if e["log_level"] in ("warning", "error", "critical")]
    assert warning["event"] == "slack_request_unusable" and "exc_info" not in warning
    assert (warning["kind"], warning["reason"]) == (kind, reason)
    metrics = (await bot.http.get(f"{bot.url}/metrics")).text
    assert f'triage_slack_requests_rejected_total{{kind="{kind}",reason="{reason}"}}' in metrics


def signed_bytes(body: bytes) -> dict[str, str]:
    """Slack's signature headers over raw bytes (the harness signs text)."""
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


async def test_not_utf8_is_refused_as_unusable_not_unsigned(bot: BotHarness) -> None:
    """The signature covers the raw bytes, so a signed body that is not UTF-8 is a 400, not a 401 or a 500."""
    body = b"payload=\xff\xfe"
    resp = await bot.http.post(f"{bot.url}/slack/events", content=body, headers=signed_bytes(body))
    assert resp.status_code == 400 and "not_utf8" in resp.text


@pytest.mark.parametrize("body", ["payload=%5B%5D", "payload=", "command=%2Ftriage", "\x00\x01"])
async def test_unsigned_or_badly_signed_garbage_stays_401(bot: BotHarness, body: str) -> None:
    """Without a valid signature nothing is parsed: 401 whatever the body, and nothing is counted."""
    before = rejected_total()
    bad_secret = await bot.post_raw(body, secret="not-the-secret")
    stale = await bot.post_raw(body, ts=1_000_000_000)
    none = await bot.http.post(f"{bot.url}/slack/events", content=body)
    junk_ts = await bot.http.post(
        f"{bot.url}/slack/events", content=body, headers={"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "x"}
    )
    assert [r.status_code for r in (bad_secret, stale, none, junk_ts)] == [401, 401, 401, 401]
    assert rejected_total() == before


async def test_a_body_over_the_limit_is_413_before_anything_is_parsed(bot: BotHarness) -> None:
    """A body over 1 MiB is refused with 413 without reading further."""
    resp = await bot.post_raw("payload=" + "x" * (1024 * 1024 + 10))
    assert resp.status_code == 413


async def test_url_verification_still_answers_the_challenge(bot: BotHarness) -> None:
    """A well-formed Events API url_verification gets its challenge back from Bolt."""
    body = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})
    resp = await bot.http.post(
        f"{bot.url}/slack/events", content=body, headers={**bot._sign(body), "Content-Type": "application/json"}
    )
    assert resp.status_code == 200 and "c-123" in resp.text


@pytest.mark.parametrize(
    "name",
    [
        "block_actions.message.json",
        "block_actions.ephemeral_enterprise.json",
        "view_submission.json",
        "message_action.json",
        "shortcut.global.json",
    ],
)
def test_slacks_own_interactive_samples_are_usable(name: str) -> None:
    """Every interactive sample Slack's SDKs test with passes the shape check as interactive."""
    body = ("payload=" + urllib.parse.quote(json.dumps(payload(name)))).encode()
    assert inspect(body, "application/x-www-form-urlencoded") == "interactive"


@pytest.mark.parametrize(
    "name", ["slash_command.form.txt", "slash_command.docs_example.form.txt", "slash_command.bolt_python.form.txt"]
)
def test_slacks_own_slash_command_samples_are_usable(name: str) -> None:
    """Every slash command sample passes the shape check as a command."""
    body = (PAYLOADS / name).read_text().strip().encode()
    assert inspect(body, "application/x-www-form-urlencoded") == "command"


def test_a_huge_value_is_named_with_its_length() -> None:
    """A field over its limit is refused saying which field and how long it was."""
    sample = payload("block_actions.message.json")
    sample["actions"][0]["value"] = "x" * 5000
    with pytest.raises(Unusable) as caught:
        inspect(("payload=" + urllib.parse.quote(json.dumps(sample))).encode(), None)
    assert caught.value.reason == "bad_field" and "actions[0].value is 5000 characters" in caught.value.detail


def test_a_submission_without_a_view_type_is_refused_before_bolt() -> None:
    """Bolt reads view.type of every view_submission (a KeyError inside it once): a view without one is refused."""
    sample = payload("view_submission.json")
    del sample["view"]["type"]
    with pytest.raises(Unusable) as caught:
        inspect(("payload=" + urllib.parse.quote(json.dumps(sample))).encode(), None)
    assert (caught.value.kind, caught.value.reason) == ("interactive", "bad_field")
    assert "view.type" in caught.value.detail


async def test_an_unhandled_request_is_one_warning_line_not_bolts_suggestion(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """A well-formed click no listener takes is a 404 with our one warning; Bolt's multi-line hint is dropped."""
    sample = payload("block_actions.message.json")
    sample["actions"][0]["action_id"] = "nobody_listens"
    with structlog.testing.capture_logs() as logs:
        resp = await bot.interactive(sample)
    assert resp.status_code == 404
    assert [(e["event"], e["reason"]) for e in logs if e["log_level"] == "warning"] == [
        ("slack_request_unusable", "unhandled")
    ]
    assert not [r for r in caplog.records if r.name.startswith("slack_bolt") and r.levelno >= 30]
