"""Block Kit builders: every output is valid Block Kit within Slack's limits (cards, modals, results)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.models import BatchResult, ItemResult, ItemState, Outcome, Platform, Target, Verb
from bot.rules import RESOLVE_REASONS
from bot.slack.blocks import (
    OUTCOME_EMOJI,
    alert_card,
    alert_card_text,
    assign_modal,
    attach_modal,
    missing_card,
    missing_card_text,
    resolve_modal,
    result_blocks,
    result_text,
    updated_note,
)
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.metadata import CardRef, ModalMeta
from tests.blockkit import assert_valid_message, assert_valid_view, text_length
from tests.unit.blocks_data import TARGETS, actions, all_text, button, state

# ---------------------------------------------------------------- the helper itself


def test_helper_rejects_76_char_button_text() -> None:
    """A 76-character button text fails validation; 75 passes."""
    assert_valid_message([{"type": "actions", "elements": [button("x" * 75)]}])
    with pytest.raises(AssertionError, match="75"):
        assert_valid_message([{"type": "actions", "elements": [button("x" * 76)]}])


def test_helper_rejects_51_block_message() -> None:
    """A message of 51 blocks fails; 50 passes."""
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
    assert_valid_message([section] * 50)
    with pytest.raises(AssertionError, match="51 blocks"):
        assert_valid_message([section] * 51)


def test_helper_rejects_message_level_limits() -> None:
    """Total text over 12,000, message text over 4,000, duplicate ids and unknown types fail."""
    big = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2500}}
    with pytest.raises(AssertionError, match="characters of text"):
        assert_valid_message([big] * 5)
    ok = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    with pytest.raises(AssertionError, match="message text"):
        assert_valid_message(ok, "x" * 4001)
    with pytest.raises(AssertionError, match="duplicate block_id"):
        assert_valid_message([{**ok[0], "block_id": "b"}, {**ok[0], "block_id": "b"}])
    with pytest.raises(AssertionError, match="duplicate action_id"):
        assert_valid_message([{"type": "actions", "elements": [button("a"), button("b")]}])
    with pytest.raises(AssertionError, match="unknown type"):
        assert_valid_message([{"type": "bogus"}])


def test_helper_rejects_bad_views() -> None:
    """A 25-character modal title and a 101-block view fail; a proper modal passes."""
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
    view = {"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": [section]}
    assert_valid_view(view)
    with pytest.raises(AssertionError):
        assert_valid_view({**view, "title": {"type": "plain_text", "text": "x" * 25}})
    with pytest.raises(AssertionError):
        assert_valid_view({**view, "blocks": [section] * 101})


# ---------------------------------------------------------------- alert cards


@pytest.mark.parametrize("platform", list(Platform))
def test_alert_card_for_every_platform(platform: Platform) -> None:
    """A card is valid and its buttons carry a CardRef naming the item and its place."""
    blocks = alert_card(
        state(platform),
        assignee_mentions=["U1"],
        actor_note=updated_note("U2", datetime.now(UTC)),
        channel="C1",
        ts="1.2",
        thread_ts="1.0",
    )
    assert_valid_message(blocks, alert_card_text(state(platform)))
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == f"{platform.label}: Suspicious login"
    ids = [b["action_id"] for b in actions(blocks)]
    assert ids[:3] == [ActionId.ASSIGN_ME, ActionId.ASSIGN_OPEN, ActionId.UNASSIGN]
    assert ids[-1] == ActionId.REFRESH
    assert (ActionId.ATTACH_OPEN in ids) is (platform is Platform.DATADOG)
    assert (ActionId.RESOLVE_OPEN in ids) is (platform is not Platform.DATADOG)
    for element in actions(blocks):
        ref = CardRef.loads(element["value"])
        assert ref == CardRef(target=TARGETS[platform], channel="C1", ts="1.2", thread_ts="1.0")
    text = all_text(blocks)
    assert "<@U1>" in text and "by <@U2>" in text and "<!date^" in text
    assert blocks[1]["accessory"]["url"] == "https://example.com/item"
    assert ("*Case*" in text) is (platform is Platform.DATADOG)


def test_alert_card_long_and_hostile_title() -> None:
    """A 5,000-character title with markup is truncated and escaped, and stays valid."""
    title = "<!channel> & " + "é" * 5000
    card_state = state(
        Platform.DATADOG,
        title=title,
        severity="&" * 3000,
        status="<b>" * 900,
        case="SEC-1",
        link="https://example.com/" + "a" * 3000,
    )
    blocks = alert_card(card_state, assignee_mentions=[])
    assert_valid_message(blocks, alert_card_text(card_state))
    assert blocks[0]["text"]["text"].endswith("…") and len(blocks[0]["text"]["text"]) <= 150
    assert "<!channel>" not in json.dumps(blocks[1:]) and "&lt;b&gt;" in json.dumps(blocks)
    assert "accessory" not in blocks[1]  # an over-long URL is left out, not sent
    assert "<!channel>" not in alert_card_text(card_state)


def test_alert_card_assignee_fallbacks() -> None:
    """Mentions win, then the platform's name, then its ids, else "unassigned"."""

    def assignee(**fields: Any) -> str:
        blocks = alert_card(state(Platform.KIBANA, **fields), assignee_mentions=fields.pop("m", []))
        assert_valid_message(blocks)
        return str(next(f["text"] for f in blocks[1]["fields"] if f["text"].startswith("*Assignee*")))

    assert assignee(assignees=["u_1"], assignee_name="Ann", m=["<@U5>"]).endswith("<@U5>")
    assert assignee(assignees=["u_1"], assignee_name="Ann").endswith("Ann")
    assert assignee(assignees=["u_1", "u_2"]).endswith("`u_1`, `u_2`")
    assert assignee().endswith("_unassigned_")
    many = assignee(assignees=[f"u_{i:0>40}" for i in range(100)])
    assert "more" in many and len(many) <= 2000


def test_closed_item_has_no_resolve_button() -> None:
    """A closed Kibana alert's card offers no Resolve button."""
    blocks = alert_card(state(Platform.KIBANA, status="closed"), assignee_mentions=[])
    assert ActionId.RESOLVE_OPEN not in [b["action_id"] for b in actions(blocks)]


def test_card_without_title_or_link() -> None:
    """A bare item shows its key as the title and has no link button."""
    blocks = alert_card(ItemState(target=TARGETS[Platform.XPANSE]), assignee_mentions=[])
    assert_valid_message(blocks)
    assert blocks[0]["text"]["text"] == "Xpanse: xpanse:5471"
    assert "accessory" not in blocks[1]


def test_missing_card() -> None:
    """An item the platform does not hold gets a short, valid, escaped card."""
    blocks = missing_card(TARGETS[Platform.DATADOG], "not found <script>" + "x" * 5000)
    assert_valid_message(blocks, missing_card_text(TARGETS[Platform.DATADOG], "gone"))
    assert "`dd:ZGVmLTAwcC1pZXJ-aS0w==`" in all_text(blocks) and "&lt;script&gt;" in all_text(blocks)


# ---------------------------------------------------------------- modals


def meta(verb: Verb, *platforms: Platform) -> ModalMeta:
    return ModalMeta(verb=verb, targets=tuple(TARGETS[p] for p in platforms), channel="C1", ts="1.2")


def test_assign_modal() -> None:
    """The assign modal has a users_select under the shared ids and carries its metadata."""
    view = assign_modal(meta(Verb.ASSIGN, *Platform))
    assert_valid_view(view)
    assert view["callback_id"] == CallbackId.ASSIGN_MODAL
    picker = next(b for b in view["blocks"] if b.get("block_id") == BlockId.ASSIGN_USER)
    assert picker["element"] == {**picker["element"], "type": "users_select", "action_id": ActionId.ASSIGN_USER}
    assert ModalMeta.loads(view["private_metadata"]) == meta(Verb.ASSIGN, *Platform)


def test_attach_modal() -> None:
    """The attach modal has a plain text input for the case."""
    view = attach_modal(meta(Verb.ATTACH, Platform.DATADOG))
    assert_valid_view(view)
    assert view["callback_id"] == CallbackId.ATTACH_MODAL
    case = next(b for b in view["blocks"] if b.get("block_id") == BlockId.ATTACH_CASE)
    assert case["element"]["type"] == "plain_text_input"
    assert case["element"]["action_id"] == ActionId.ATTACH_CASE


@pytest.mark.parametrize("platform", [Platform.KIBANA, Platform.XPANSE])
def test_resolve_modal_offers_the_platforms_reasons(platform: Platform) -> None:
    """The resolve modal lists exactly that platform's reasons and a multiline comment."""
    view = resolve_modal(meta(Verb.RESOLVE, platform), platform=platform)
    assert_valid_view(view)
    assert view["callback_id"] == CallbackId.RESOLVE_MODAL
    reason = next(b for b in view["blocks"] if b.get("block_id") == BlockId.RESOLVE_REASON)
    values = [o["value"] for o in reason["element"]["options"]]
    assert values == list(RESOLVE_REASONS[platform])
    assert reason["optional"] is (platform is Platform.KIBANA)
    comment = next(b for b in view["blocks"] if b.get("block_id") == BlockId.RESOLVE_COMMENT)
    assert comment["element"]["multiline"] is True
    assert comment["element"]["action_id"] == ActionId.RESOLVE_COMMENT


def test_resolve_modal_for_datadog_is_the_mute_modal() -> None:
    """Datadog's resolve is a mute, so its resolve modal is the mute modal."""
    view = resolve_modal(meta(Verb.RESOLVE, Platform.DATADOG), platform=Platform.DATADOG)
    assert view["callback_id"] == CallbackId.MUTE_MODAL


def test_modals_with_many_targets() -> None:
    """A modal for many items lists what fits and says how many more."""
    targets = tuple(Target(platform=Platform.XPANSE, id=str(i)) for i in range(200))
    view = assign_modal(ModalMeta(verb=Verb.ASSIGN, targets=targets))
    assert_valid_view(view)
    body = view["blocks"][0]["text"]["text"]
    assert body.startswith("*200 items*")
    listed = body.count("• `xpanse:")
    assert listed == 200 or f"…and {200 - listed} more" in body


# ---------------------------------------------------------------- results


def item(i: int, outcome: Outcome, detail: str = "") -> ItemResult:
    status = 500 if outcome is Outcome.FAILED else None
    return ItemResult(target=Target(platform=Platform.XPANSE, id=str(i)), outcome=outcome, detail=detail, status=status)


def test_result_shows_every_outcome_and_vendor_reason() -> None:
    """Each outcome gets its emoji line; failures show the vendor's status and reason."""
    result = BatchResult(items=[item(i, o, f"reason {o.value}") for i, o in enumerate(Outcome)])
    blocks = result_blocks(Verb.ASSIGN, result, actor_id="U1", summary="assigned 5 items to <@U2>")
    text = result_text(Verb.ASSIGN, result, actor_id="U1", summary="assigned 5 items to <@U2>")
    assert_valid_message(blocks, text)
    body = all_text(blocks)
    assert blocks[0]["text"]["text"] == "<@U1> assigned 5 items to <@U2>"
    for i, outcome in enumerate(Outcome):
        assert f"{OUTCOME_EMOJI[outcome]} `xpanse:{i}`" in body
    assert "500 reason failed" in body
    assert "1 failed" in text and "1 done" in text
    # failures are listed before successes
    assert body.index(":x:") < body.index(":white_check_mark:")


def test_result_with_300_items_is_truncated_within_limits() -> None:
    """300 items with long reasons fit 50 blocks and ~12k characters, with "…and N more"."""
    outcomes = list(Outcome)
    result = BatchResult(items=[item(i, outcomes[i % 5], "vendor says no " * 30) for i in range(300)])
    blocks = result_blocks(Verb.RESOLVE, result, actor_id="U1", summary="resolved 300 items")
    assert_valid_message(blocks, result_text(Verb.RESOLVE, result, actor_id="U1", summary="x"))
    assert text_length(blocks) <= 12_000
    body = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    listed = sum(body.count(f"{OUTCOME_EMOJI[o]} `") for o in Outcome)
    more = sum(int(line.split()[1]) for line in body.splitlines() if line.startswith("…and "))
    assert listed + more == 300 and more > 0


def test_result_with_300_short_successes() -> None:
    """300 successes list as many as fit and account for every one."""
    result = BatchResult(items=[item(i, Outcome.DONE) for i in range(300)])
    blocks = result_blocks(Verb.UNASSIGN, result, actor_id="U1", summary="unassigned 300 items")
    assert_valid_message(blocks)
    body = "\n".join(b["text"]["text"] for b in blocks if b["type"] == "section")
    listed = body.count(":white_check_mark: `")
    assert listed > 100
    assert listed == 300 or f"…and {300 - listed} more done" in body


def test_result_with_no_items() -> None:
    """An empty result is still a valid message."""
    blocks = result_blocks(Verb.ASSIGN, BatchResult(), actor_id="U1", summary="did nothing")
    assert_valid_message(blocks, result_text(Verb.ASSIGN, BatchResult(), actor_id="U1", summary="x"))


def test_modal_item_list_fits_the_largest_metadata() -> None:
    """The most items ModalMeta can carry still fit the modal's item section, and the
    section's own cut-off says how many it left out."""
    from bot.slack.blocks._kit import _target_lines

    targets = tuple(Target(platform=Platform.DATADOG, id=f"{i:0>90}") for i in range(30))
    view = attach_modal(ModalMeta(verb=Verb.ATTACH, targets=targets))
    assert_valid_view(view)
    assert view["blocks"][0]["text"]["text"].count("• `dd:") == 30
    lines = _target_lines(targets, budget=1000)
    assert lines[-1] == f"…and {30 - (len(lines) - 1)} more" and sum(map(len, lines)) < 1000


def test_esc_cut_never_splits_an_escape() -> None:
    """Truncating escaped text keeps whole escapes and fills the limit."""
    from bot.slack.blocks import esc_cut

    cut_text = esc_cut("<b>" * 900, 100)
    assert len(cut_text) <= 100 and len(cut_text) >= 90
    assert cut_text.endswith("…") and cut_text[:-1].replace("&lt;b&gt;", "").strip("&ltgb;") == ""
    assert esc_cut("a&b", 10) == "a&amp;b"
    assert esc_cut("&&&&", 7) == "&amp;…"
