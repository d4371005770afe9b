"""The storm digest's Block Kit: a table within Slack's limits, bulk buttons carrying only an id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.core.intake import DIGEST_ROWS
from bot.models import Platform, Target, Verb
from bot.slack.blocks import digest as d
from bot.slack.ids import ActionId
from bot.slack.metadata import DigestMeta, DigestRef
from bot.store.intake import DigestRow
from tests.blockkit import assert_valid_message, assert_valid_view


def rows(n: int, *, title: str = "t" * 2000, id_len: int = 500) -> list[DigestRow]:
    platforms = [Platform.DATADOG, Platform.KIBANA, Platform.XPANSE]
    out = []
    for i in range(n):
        platform = platforms[i % 3]
        item = str(10**6 + i) if platform is Platform.XPANSE else f"{i}-" + "x" * id_len
        target = Target(platform=platform, id=item, space="secops" if platform is Platform.KIBANA else None)
        out.append(DigestRow(seq=i, target=target, severity="critical", title=f"{title}<!channel>"))
    return out


def table_of(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    (table,) = [b for b in blocks if b["type"] == "table"]
    return table


def test_full_digest_is_valid_block_kit() -> None:
    """A full digest with the longest titles and ids is a valid message: header row plus every alert."""
    blocks = d.digest_blocks("abc123", rows(DIGEST_ROWS))
    assert_valid_message(blocks, d.digest_text(rows(DIGEST_ROWS)))
    table = table_of(blocks)
    assert len(table["rows"]) == DIGEST_ROWS + 1
    assert [c["text"] for c in table["rows"][0]] == ["Severity", "Platform", "Title", "Id"]


def test_buttons_carry_only_the_digest_id() -> None:
    """Every bulk button's value is the DigestRef, far under 2,000 characters."""
    blocks = d.digest_blocks("abc123", rows(DIGEST_ROWS))
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == [
        ActionId.DIGEST_ASSIGN_ME,
        ActionId.DIGEST_ASSIGN_OPEN,
        ActionId.DIGEST_RESOLVE_OPEN,
        ActionId.DIGEST_SHOW_OPEN,
    ]
    assert {DigestRef.loads(e["value"]).id for e in actions["elements"]} == {"abc123"}


@pytest.mark.parametrize("verb", [Verb.ASSIGN, Verb.RESOLVE, Verb.SHOW])
def test_digest_modals_are_valid(verb: Verb) -> None:
    """The Assign all…, Resolve all… and Show cards modals validate with a full digest."""
    meta = DigestMeta(verb=verb, id="abc123", channel="C1", ts="1.2")
    view = d.digest_modal(verb, meta, rows(DIGEST_ROWS))
    assert_valid_view(view)
    assert DigestMeta.loads(view["private_metadata"]) == meta


def test_resolve_modal_asks_a_reason_per_resolvable_platform() -> None:
    """Kibana and Xpanse rows each get a reason select; Datadog findings are named as left alone."""
    view = d.digest_resolve_modal(DigestMeta(verb=Verb.RESOLVE, id="x"), rows(3))
    block_ids = [b.get("block_id") for b in view["blocks"]]
    assert "digest_reason_kibana" in block_ids and "digest_reason_xpanse" in block_ids
    assert "cannot be resolved" in json.dumps(view["blocks"][0])


def test_validator_refuses_what_slack_refuses_in_a_table() -> None:
    """The test validator refuses a table Slack would: 101 rows, ragged rows, empty cells, two tables."""
    good = d.digest_table(rows(3))
    too_many = {**good, "rows": good["rows"] * 34}
    ragged = {**good, "rows": [good["rows"][0], good["rows"][1][:2]]}
    empty = {**good, "rows": [[{"type": "raw_text", "text": ""}]]}
    bad_cell = {**good, "rows": [[{"type": "mrkdwn", "text": "x"}]]}
    for table, reason in [
        (too_many, "table rows"),
        (ragged, "cells, the first"),
        (empty, "empty cell"),
        (bad_cell, "bad cell"),
    ]:
        with pytest.raises(AssertionError, match=reason):
            assert_valid_message([table])
    small = d.digest_table(rows(3, title="x", id_len=5))
    with pytest.raises(AssertionError, match="one per message"):
        assert_valid_message([small, small])
