"""Block Kit builders for handoff, help and usage errors: valid Block Kit within Slack's limits."""

from __future__ import annotations

import pytest

from bot.models import BatchResult, ItemResult, Outcome, Platform, Target, Verb
from bot.slack.blocks import (
    handoff_preview,
    handoff_preview_text,
    handoff_result,
    handoff_result_text,
    help_blocks,
    help_fallback_text,
    usage_error_blocks,
    usage_error_text,
)
from bot.slack.commands import GRAMMAR, help_text
from bot.slack.ids import ActionId
from bot.slack.metadata import HandoffRef
from tests.blockkit import assert_valid_message
from tests.unit.blocks_data import actions, all_text, state


def item(i: int, outcome: Outcome, detail: str = "") -> ItemResult:
    status = 500 if outcome is Outcome.FAILED else None
    return ItemResult(target=Target(platform=Platform.XPANSE, id=str(i)), outcome=outcome, detail=detail, status=status)


# ---------------------------------------------------------------- handoff


def test_handoff_preview() -> None:
    """The preview counts items per platform, warns about unmapped platforms, and confirms."""
    items = [state(p) for p in Platform] + [state(Platform.XPANSE, target=Target(platform=Platform.XPANSE, id="9"))]
    ref = HandoffRef(id="job-1")
    blocks = handoff_preview(ref, from_user="U1", to_user="U2", items=items, unmapped=[Platform.KIBANA])
    assert_valid_message(blocks, handoff_preview_text(from_user="U1", to_user="U2", items=items))
    body = all_text(blocks)
    assert "4 open items" in body and "Xpanse 2" in body and "Datadog 1" in body
    assert "no identity on Kibana" in body
    buttons = actions(blocks)
    assert [b["action_id"] for b in buttons] == [ActionId.HANDOFF_CONFIRM, ActionId.HANDOFF_CANCEL]
    assert all(HandoffRef.loads(b["value"]) == ref for b in buttons)
    assert "confirm" in buttons[0]


def test_handoff_preview_many_and_none() -> None:
    """300 items stay within limits; no items means no buttons."""
    items = [
        state(Platform.XPANSE, target=Target(platform=Platform.XPANSE, id=str(i)), title="t" * 200) for i in range(300)
    ]
    blocks = handoff_preview(HandoffRef(id="j"), from_user="U1", to_user="U2", items=items)
    assert_valid_message(blocks)
    assert "more" in all_text(blocks)
    empty = handoff_preview(HandoffRef(id="j"), from_user="U1", to_user="U2", items=[])
    assert_valid_message(empty)
    assert actions(empty) == []


def test_handoff_result_retry_button_only_with_failures() -> None:
    """A "Retry failed" button appears, valued with the job, only when items failed."""
    ref = HandoffRef(id="job-7")
    failed = BatchResult(items=[item(1, Outcome.DONE), item(2, Outcome.FAILED, "boom")])
    blocks = handoff_result(ref, result=failed, actor_id="U1", from_user="U1", to_user="U2")
    text = handoff_result_text(result=failed, actor_id="U1", from_user="U1", to_user="U2")
    assert_valid_message(blocks, text)
    retry = actions(blocks)
    assert [b["action_id"] for b in retry] == [ActionId.RETRY_FAILED]
    assert HandoffRef.loads(retry[0]["value"]) == ref and "Retry 1 failed" in all_text(retry)
    ok = BatchResult(items=[item(1, Outcome.DONE)])
    assert actions(handoff_result(ref, result=ok, actor_id="U1", from_user="U1", to_user="U2")) == []


# ---------------------------------------------------------------- help and errors


@pytest.mark.parametrize("verb", [None, *(s.verb for s in GRAMMAR)])
def test_help_blocks(verb: Verb | None) -> None:
    """Help for the grammar and each verb is valid, with < and > escaped."""
    text = help_text(verb)
    blocks = help_blocks(text)
    assert_valid_message(blocks, help_fallback_text(text))
    body = "\n".join(b["text"]["text"] for b in blocks)
    assert "<targets" not in body and "<@" not in body
    assert body.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text


def test_usage_error_blocks() -> None:
    """A usage error is shown escaped, with a pointer to the help."""
    message = "Missing user.\nUsage: `/triage assign <targets…> [to] <@user | me>`"
    blocks = usage_error_blocks(message)
    assert_valid_message(blocks, usage_error_text(message))
    assert "&lt;@user | me&gt;" in blocks[0]["text"]["text"]
    assert_valid_message(usage_error_blocks("x" * 10_000), usage_error_text("x" * 10_000))


def test_handoff_preview_lists_up_to_99_items_in_a_table() -> None:
    """Up to 99 handoff items are previewed as one valid table (header row first); 100 fall back to sections."""
    items = [
        state(Platform.XPANSE, target=Target(platform=Platform.XPANSE, id=str(i)), title="t" * 200) for i in range(99)
    ]
    blocks = handoff_preview(HandoffRef(id="j"), from_user="U1", to_user="U2", items=items)
    assert_valid_message(blocks)
    (table,) = [b for b in blocks if b["type"] == "table"]
    assert len(table["rows"]) == 100 and table["rows"][0][0]["text"] == "Platform"
    assert table["rows"][1][3]["text"] == "xpanse:0"
    more = [*items, state(Platform.XPANSE, target=Target(platform=Platform.XPANSE, id="99"))]
    fallback = handoff_preview(HandoffRef(id="j"), from_user="U1", to_user="U2", items=more)
    assert_valid_message(fallback)
    assert not [b for b in fallback if b["type"] == "table"] and "xpanse:0" in all_text(fallback)
