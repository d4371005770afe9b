"""Signed garbage on /slack/events, fuzzed with hypothesis: never a 5xx, never a traceback.

Each test drives the real aiohttp app (``BotHarness`` over loopback) with thousands of
correctly signed bodies of one kind (interactive ``payload=``, slash command form,
Events API JSON): Slack's own shapes with fields deleted or replaced by any JSON value
(huge strings included), payloads that are not objects, unknown types, raw text and
bytes that are not UTF-8. Hypothesis runs in a worker thread and sends each body through
the bot's event loop, so the bot keeps serving while examples are generated. Every
answer must be a 4xx or a 200; each rejection is one warning line and one count in
``triage_slack_requests_rejected_total``; nothing is logged at error level or with a
traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.metrics import REGISTRY
from bot.models import Platform, Target, Verb
from bot.sandbox import payloads
from bot.slack.ids import ActionId, CallbackId
from bot.slack.metadata import CardRef, HandoffRef, ModalMeta
from tests.scenario.harness import CHANNEL, SIGNING_SECRET, TEAM, BotHarness

Json = dict[str, Any]
EXAMPLES = 1200  # per kind: 3600 signed requests in all
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=3),
    database=None,
    suppress_health_check=list(HealthCheck),
)
FORM = "application/x-www-form-urlencoded"
TARGET = Target(platform=Platform.XPANSE, id="5471")

# ---- strategies ---------------------------------------------------------------------------

# Long enough to break any field limit, short enough that a body stays under the 1 MiB cap
# even with JSON and URL escaping (a 413 before the signature is checked is tested apart).
huge = st.integers(min_value=3_000, max_value=40_000).map(lambda n: "𝕏" * (n // 20) + "x" * n)
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["", "x", "U0BOB", "<@U0BOB>", "dd:abc", "block_actions", "{", "[]", "null"]),
    huge,
)
json_value = st.recursive(
    leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside ``value`` (dict keys and list indices), depth first."""
    found: list[tuple[Any, ...]] = []
    items: list[tuple[Any, Any]] = (
        list(value.items()) if isinstance(value, dict) else list(enumerate(value)) if isinstance(value, list) else []
    )
    for key, child in items:
        found.append((*prefix, key))
        found += paths(child, (*prefix, key))
    return found


@st.composite
def mutated(draw: st.DrawFn, templates: list[Json]) -> Any:
    """A template with up to three fields deleted, replaced by any JSON value, or added."""
    value: Any = json.loads(json.dumps(draw(st.sampled_from(templates))))
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):  # often intact or nearly: reach the listeners
        where = paths(value)
        if not where:
            break
        path = draw(st.sampled_from(where))
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["delete", "replace", "replace", "add"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(json_value)
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(json_value)
    return value


def card_click(action_id: str, value: str) -> Json:
    return payloads.block_actions(
        action=payloads.button(action_id, value, ts="1700000000.000100"),
        user_id="U0ALICE",
        team_id=TEAM,
        channel_id=CHANNEL,
        message={"ts": "1700000000.000001", "type": "message", "blocks": []},
        message_ts="1700000000.000001",
        response_url="http://127.0.0.1:9/webhook/fuzz",
        trigger_id="trigger.fuzz",
    )


def interactive_templates() -> list[Json]:
    card = CardRef(target=TARGET, channel=CHANNEL, ts="1700000000.000001").dumps()
    meta = ModalMeta(verb=Verb.ASSIGN, targets=(TARGET,), channel=CHANNEL, ts="1700000000.000001").dumps()
    view = {"id": "V1", "hash": "h1", "type": "modal", "callback_id": CallbackId.ASSIGN_MODAL.value}
    submission = payloads.view_submission(
        view={**view, "private_metadata": meta},
        values={"assign_user": {"assign_user": {"type": "users_select", "selected_user": "U0BOB"}}},
        user_id="U0ALICE",
        team_id=TEAM,
        trigger_id="trigger.view",
        view_id="V1",
        view_hash="h1",
    )
    shortcut = payloads.message_action(
        callback_id=CallbackId.TRIAGE_MESSAGE.value,
        message={"ts": "1700000000.000002", "type": "message", "text": "alert xpanse:5471"},
        message_ts="1700000000.000002",
        user_id="U0ALICE",
        team_id=TEAM,
        channel_id=CHANNEL,
        trigger_id="trigger.sc",
        response_url="http://127.0.0.1:9/webhook/fuzz",
    )
    return [
        card_click(ActionId.REFRESH.value, card),
        card_click(ActionId.ASSIGN_OPEN.value, card),
        card_click(ActionId.HANDOFF_CANCEL.value, HandoffRef(id="nope").dumps()),
        submission,
        {**submission, "type": "view_closed"},
        shortcut,
        payloads.global_shortcut(callback_id="triage_global", user_id="U0ALICE", team_id=TEAM, trigger_id="t.g"),
        {"type": "block_suggestion", "user": {"id": "U0ALICE"}, "team": {"id": TEAM}, "action_id": "x", "value": "a"},
    ]


def interactive_bodies() -> st.SearchStrategy[bytes]:
    broken = mutated(interactive_templates()).map(json.dumps)  # Slack's shapes, broken
    encoded = st.one_of(
        broken,
        broken,  # twice: most examples should get past the first check
        json_value.map(json.dumps),  # payload=[] / "a string" / 3 / {...}
        st.text(max_size=200),  # not JSON at all
        st.just(""),
    )
    quoted = broken.map(lambda p: ("payload=" + urllib.parse.quote(p)).encode())
    return st.one_of(
        quoted,
        quoted,
        encoded.map(lambda p: ("payload=" + urllib.parse.quote(p)).encode()),
        encoded.map(lambda p: f"payload={p}".encode()),  # not URL-encoded
        st.binary(max_size=200).map(lambda b: b"payload=" + b),
    )


@st.composite
def command_form(draw: st.DrawFn) -> bytes:
    """A slash command form with any text and up to two fields dropped or replaced, plus extra fields."""
    fields = payloads.slash_command(
        text=draw(
            st.one_of(
                st.sampled_from(["help", "", "show", "history xpanse:5471", "assign", "assign to <@U0BOB>", "map"]),
                st.text(max_size=300),
                huge,
            )
        ),
        user_id="U0ALICE",
        channel_id=CHANNEL,
        team_id=TEAM,
        response_url="http://127.0.0.1:9/webhook/fuzz",
        trigger_id=f"trigger.cmd.{draw(st.integers(0, 10**9))}",
    )
    for key in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2, unique=True)):
        replacement = draw(st.one_of(st.none(), st.text(max_size=40), huge))
        if replacement is None:
            del fields[key]
        else:
            fields[key] = replacement
    extra = draw(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=2))
    return urllib.parse.urlencode({**extra, **fields}).encode()


def command_bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        command_form(),
        command_form(),
        st.text(max_size=300).map(str.encode),
        st.binary(max_size=300),
    )


def event_bodies() -> st.SearchStrategy[bytes]:
    callback: Json = {
        "token": "xxx",
        "team_id": TEAM,
        "api_app_id": "A111",
        "type": "event_callback",
        "event_id": "Ev111",
        "event_time": 1700000000,
        "authorizations": [{"team_id": TEAM, "user_id": "UBOT", "is_bot": True}],
        "event": {"type": "app_mention", "user": "U0ALICE", "text": "<@UBOT> hi", "ts": "1.2", "channel": CHANNEL},
    }
    templates = [
        callback,
        {"token": "xxx", "challenge": "abc", "type": "url_verification"},
        {"token": "xxx", "type": "app_rate_limited", "team_id": TEAM, "minute_rate_limited": 1},
        {**callback, "event": {"type": "user_change", "user": {"id": "U0BOB", "deleted": True}}},
    ]
    broken = mutated(templates).map(lambda v: json.dumps(v).encode())
    return st.one_of(
        broken,
        broken,
        json_value.map(lambda v: json.dumps(v).encode()),
        st.text(max_size=200).map(lambda t: ("{" + t).encode()),
        st.binary(max_size=200).map(lambda b: b"{" + b),
    )


# ---- the driver ---------------------------------------------------------------------------


def rejected_total() -> float:
    """The sum of ``triage_slack_requests_rejected_total`` over every label."""
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "triage_slack_requests_rejected":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


async def fuzz(
    bot: BotHarness, caplog: pytest.LogCaptureFixture, kind: str, bodies: st.SearchStrategy[bytes], content_type: str
) -> Counter[int]:
    """Send ``EXAMPLES`` signed bodies; check every answer and the logs; return the statuses seen."""
    loop = asyncio.get_running_loop()
    statuses: Counter[int] = Counter()
    rejected_before = rejected_total()
    rejections = 0

    async def send(body: bytes) -> tuple[int, str]:
        stamp = str(int(time.time()))
        digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        headers = {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": f"v0={digest}",
            "Content-Type": content_type,
        }
        resp = await bot.http.post(f"{bot.url}/slack/events", content=body, headers=headers)
        return resp.status_code, resp.text

    def run(submit: Callable[[bytes], tuple[int, str]]) -> None:
        @FUZZ
        @given(body=bodies)
        def one(body: bytes) -> None:
            nonlocal rejections
            status, text = submit(body)
            statuses[status] += 1
            assert status < 500, (status, text[:300], body[:300])
            assert status in (200, 400, 404), (status, text[:300], body[:300])
            if status != 200:
                rejections += 1

        one()

    def submit(body: bytes) -> tuple[int, str]:
        return asyncio.run_coroutine_threadsafe(send(body), loop).result(timeout=10)

    started = time.monotonic()
    with structlog.testing.capture_logs() as logs:
        await asyncio.to_thread(run, submit)
        await bot.settle(timeout=30)
    elapsed = time.monotonic() - started
    assert sum(statuses.values()) >= EXAMPLES
    warnings = [e for e in logs if e.get("event") == "slack_request_unusable"]
    assert len(warnings) == rejections == rejected_total() - rejected_before, (len(warnings), rejections)
    assert all(e["log_level"] == "warning" and "exc_info" not in e for e in warnings)
    loud = [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e]
    assert loud == [], loud[:3]
    tracebacks = [r for r in caplog.records if r.levelno >= 40 or r.exc_info]
    assert tracebacks == [], [r.getMessage()[:300] for r in tracebacks[:3]]
    reasons = Counter(str(w["reason"]) for w in warnings)
    print(f"\n{kind}: {sum(statuses.values())} requests in {elapsed:.1f}s, statuses {dict(statuses)}, {dict(reasons)}")
    return statuses


@pytest.mark.timeout(90)
async def test_fuzzed_interactive_payloads_are_never_a_server_error(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Thousands of signed, malformed interactive payloads: each a 4xx or a 200, one warning per rejection."""
    statuses = await fuzz(bot, caplog, "interactive", interactive_bodies(), FORM)
    assert statuses[400] > 0


@pytest.mark.timeout(90)
async def test_fuzzed_slash_commands_are_never_a_server_error(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Thousands of signed, malformed slash command forms: each a 4xx or a 200, one warning per rejection."""
    statuses = await fuzz(bot, caplog, "command", command_bodies(), FORM)
    assert statuses[400] > 0 and statuses[200] > 0


@pytest.mark.timeout(90)
async def test_fuzzed_events_api_bodies_are_never_a_server_error(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Thousands of signed, malformed Events API bodies: each a 4xx or a 200, one warning per rejection."""
    statuses = await fuzz(bot, caplog, "event", event_bodies(), "application/json")
    assert statuses[400] > 0
