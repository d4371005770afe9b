"""Block Kit validation for tests, per shared/slack/NOTES.md §4.

slack-sdk's models validate each element recursively (``Block.parse(b).to_dict()``,
``View(**view).to_dict()``); they do not check the limits that apply to a message as
a whole, so these helpers add them: at most 50 blocks per message (100 per view),
at most 8,000 characters of text across all blocks (Slack refuses around 12,000; the bot keeps
a third in hand), at most 4,000 characters of message ``text``, unique ``block_id`` values,
and unique ``action_id`` values per block; and the ``table`` block's own limits, which
slack-sdk does not check (``_check_table``).
Both helpers raise ``AssertionError`` with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

TABLE_ROWS_MAX = 100
TABLE_CELLS_MAX = 20
TABLE_CELL_TYPES = frozenset({"raw_text", "raw_number", "rich_text"})
TABLE_ALIGN = frozenset({"left", "center", "right"})
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
TOTAL_TEXT_MAX = 8_000
MESSAGE_TEXT_MAX = 4_000


def text_length(node: Any) -> int:
    """The number of characters in every ``text`` string anywhere inside ``node``."""
    if isinstance(node, dict):
        return sum(
            len(value) if key == "text" and isinstance(value, str) else text_length(value)
            for key, value in node.items()
        )
    if isinstance(node, list):
        return sum(text_length(item) for item in node)
    return 0


def _check_table(raw: dict[str, Any], *, where: str) -> None:
    """The ``table`` block (docs.slack.dev/reference/block-kit/blocks/table-block): slack-sdk only
    checks that rows exist, so the limits are checked here: at most 100 rows of at most 20 cells,
    every row as wide as the first, each cell ``raw_text``/``raw_number`` (with a non-empty
    ``text``) or ``rich_text``, and at most 20 ``column_settings`` of known keys."""
    rows = raw.get("rows")
    assert isinstance(rows, list) and rows, f"{where}: a table needs rows"
    assert len(rows) <= TABLE_ROWS_MAX, f"{where}: {len(rows)} table rows, Slack allows {TABLE_ROWS_MAX}"
    width = len(rows[0]) if isinstance(rows[0], list) else 0
    for n, row in enumerate(rows):
        assert isinstance(row, list) and row, f"{where}: table row {n} is not a list of cells"
        assert len(row) <= TABLE_CELLS_MAX, f"{where}: table row {n} has {len(row)} cells, at most {TABLE_CELLS_MAX}"
        assert len(row) == width, f"{where}: table row {n} has {len(row)} cells, the first has {width}"
        for cell in row:
            assert isinstance(cell, dict) and cell.get("type") in TABLE_CELL_TYPES, f"{where}: bad cell {cell!r}"
            if cell["type"] != "rich_text":
                text = cell.get("text")
                assert isinstance(text, str) and text, f"{where}: table row {n} has an empty cell"
            else:
                Block.parse(cell).to_dict()  # type: ignore[union-attr]
    settings = raw.get("column_settings") or []
    assert isinstance(settings, list) and len(settings) <= TABLE_CELLS_MAX, f"{where}: bad column_settings"
    for setting in settings:
        if setting is None:
            continue
        assert isinstance(setting, dict) and set(setting) <= {"align", "is_wrapped"}, f"{where}: {setting!r}"
        assert setting.get("align", "left") in TABLE_ALIGN, f"{where}: bad column align {setting!r}"
        assert isinstance(setting.get("is_wrapped", False), bool), f"{where}: is_wrapped must be a boolean"
    assert set(raw) <= {"type", "block_id", "rows", "column_settings"}, f"{where}: unknown table keys {set(raw)}"


def _check_blocks(blocks: Sequence[dict[str, Any]], *, limit: int, where: str) -> None:
    assert isinstance(blocks, list), f"{where}: blocks must be a list, got {type(blocks).__name__}"
    assert blocks, f"{where}: no blocks"
    assert len(blocks) <= limit, f"{where}: {len(blocks)} blocks, Slack allows {limit}"
    json.dumps(blocks)  # must be JSON as sent to Slack
    block_ids: set[str] = set()
    for index, raw in enumerate(blocks):
        assert isinstance(raw, dict), f"{where}: block {index} is not a dict"
        try:
            parsed = Block.parse(raw)
            assert parsed is not None, f"{where}: block {index} has an unknown type {raw.get('type')!r}"
            parsed.to_dict()
        except SlackObjectFormationError as exc:
            raise AssertionError(f"{where}: block {index} ({raw.get('type')}): {exc}") from exc
        if raw.get("type") == "table":
            _check_table(raw, where=f"{where}: block {index}")
        block_id = raw.get("block_id")
        if block_id is not None:
            assert block_id not in block_ids, f"{where}: duplicate block_id {block_id!r}"
            block_ids.add(block_id)
        elements = raw.get("elements") if raw.get("type") == "actions" else None
        action_ids = [e.get("action_id") for e in elements or [] if e.get("action_id")]
        assert len(action_ids) == len(set(action_ids)), f"{where}: duplicate action_id in block {index}: {action_ids}"
    total = text_length(list(blocks))
    assert total <= TOTAL_TEXT_MAX, f"{where}: {total} characters of text, keep under {TOTAL_TEXT_MAX}"


def assert_valid_message(blocks: Sequence[dict[str, Any]], text: str | None = None) -> None:
    """Fail unless ``blocks`` (and ``text``) form a message Slack accepts."""
    _check_blocks(blocks, limit=MESSAGE_BLOCKS_MAX, where="message")
    tables = sum(1 for b in blocks if b.get("type") == "table")
    assert tables <= 1, f"message: {tables} table blocks, Slack allows one per message"
    if text is not None:
        assert isinstance(text, str) and text.strip(), "message text must be non-empty"
        assert len(text) <= MESSAGE_TEXT_MAX, f"message text is {len(text)} characters"


def assert_valid_view(view: dict[str, Any]) -> None:
    """Fail unless ``view`` is a modal/Home view Slack accepts."""
    try:
        View(**view).to_dict()
    except (SlackObjectFormationError, TypeError) as exc:
        raise AssertionError(f"view: {exc}") from exc
    _check_blocks(view.get("blocks", []), limit=VIEW_BLOCKS_MAX, where="view")
