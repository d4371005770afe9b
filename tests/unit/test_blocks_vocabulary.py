"""Cards and the mute modal for the status verbs: mute state, Xpanse details, the right buttons."""

from __future__ import annotations

from typing import Any

from bot.models import ItemState, Platform, Target, Verb
from bot.rules import DATADOG_DESCRIPTION_MAX, DATADOG_MUTE_REASONS
from bot.slack.blocks import alert_card, mute_modal, tag_modal
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.metadata import ModalMeta
from tests.blockkit import assert_valid_message, assert_valid_view

DD = Target(platform=Platform.DATADOG, id="ZGVmLTAwcC1pZXJ-aS0w==")
KB = Target(platform=Platform.KIBANA, id="8a3f2c", space="soc")
XP = Target(platform=Platform.XPANSE, id="5471")
UNTIL = 1_801_439_999_999  # the end of 2027-01-31, UTC


def card(target: Target, **fields: Any) -> list[dict[str, Any]]:
    blocks = alert_card(ItemState(target=target, title="T", status="open", **fields), assignee_mentions=[])
    assert_valid_message(blocks, "fallback")
    return blocks


def ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def fields(blocks: list[dict[str, Any]]) -> str:
    return " | ".join(f["text"] for f in blocks[1]["fields"])


def test_a_muted_finding_shows_why_and_until_when_and_offers_unmute() -> None:
    """A muted Datadog card says muted, the reason and the expiry, with Unmute instead of Mute…."""
    blocks = card(DD, muted=True, mute_reason="risk_accepted", mute_until=UNTIL, case="SEC-1")
    assert "*Muted*\nyes (risk_accepted), until 2027-01-31 23:59 UTC" in fields(blocks)
    assert ActionId.UNMUTE in ids(blocks) and ActionId.MUTE_OPEN not in ids(blocks)
    assert ActionId.DETACH in ids(blocks)


def test_an_unmuted_finding_offers_mute_and_no_detach_without_a_case() -> None:
    """Not muted: Mute…; no case: no Detach; an indefinite mute reads "indefinitely"."""
    blocks = card(DD, muted=False)
    assert "*Muted*\nno" in fields(blocks)
    assert ActionId.MUTE_OPEN in ids(blocks) and ActionId.DETACH not in ids(blocks)
    assert ActionId.RESOLVE_OPEN not in ids(blocks)
    assert "until indefinitely" in fields(card(DD, muted=True))


def test_kibana_cards_offer_acknowledge_close_and_reopen_by_status() -> None:
    """Open: Acknowledge and Close…; closed: Reopen only."""
    assert {ActionId.ACK, ActionId.RESOLVE_OPEN, ActionId.TAG_OPEN} <= set(ids(card(KB)))
    closed = alert_card(ItemState(target=KB, status="closed"), assignee_mentions=[])
    assert ActionId.REOPEN in ids(closed) and ActionId.ACK not in ids(closed)


def test_xpanse_cards_show_alert_count_and_top_assets_and_reopen_when_resolved() -> None:
    """The details fields appear when known; a resolved incident offers Reopen."""
    blocks = card(XP, alert_count=3, top_assets=["acme.com", "1.1.1.1"])
    assert "*Alerts*\n3" in fields(blocks) and "*Top assets*\nacme.com, 1.1.1.1" in fields(blocks)
    resolved = alert_card(ItemState(target=XP, status="resolved_-_no_risk"), assignee_mentions=[])
    assert ActionId.REOPEN in ids(resolved)


def test_mute_modal_has_reason_date_and_a_280_character_description() -> None:
    """The mute modal: the six mute reasons (required), an optional datepicker, a 280-character text."""
    meta = ModalMeta(verb=Verb.RESOLVE, targets=(DD,))
    view = mute_modal(meta)
    assert_valid_view(view)
    assert view["callback_id"] == CallbackId.MUTE_MODAL
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    reason = by_id[BlockId.MUTE_REASON]
    assert [o["value"] for o in reason["element"]["options"]] == list(DATADOG_MUTE_REASONS)
    assert not reason.get("optional")
    assert by_id[BlockId.MUTE_UNTIL]["element"]["type"] == "datepicker" and by_id[BlockId.MUTE_UNTIL]["optional"]
    assert by_id[BlockId.MUTE_DESCRIPTION]["element"]["max_length"] == DATADOG_DESCRIPTION_MAX
    assert ModalMeta.loads(view["private_metadata"]) == meta


def test_tag_modal_has_one_line_of_changes() -> None:
    """The tags modal: the alerts and one required plain-text line under the shared ids."""
    meta = ModalMeta(verb=Verb.TAG, targets=(KB,))
    view = tag_modal(meta)
    assert_valid_view(view)
    assert view["callback_id"] == CallbackId.TAG_MODAL
    line = next(b for b in view["blocks"] if b.get("block_id") == BlockId.TAG_CHANGES)
    assert line["element"]["action_id"] == ActionId.TAG_CHANGES and not line.get("optional")
