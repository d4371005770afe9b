"""A ``table`` block of items (docs.slack.dev/reference/block-kit/blocks/table-block).

Slack allows at most 100 rows (the header row included) of at most 20 cells, one table
per message; ``item_table`` returns None when the items do not fit, and the caller keeps
its section list instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.models import ItemState
from bot.slack.blocks._kit import Block, cut

TABLE_ROWS_MAX = 100
# Characters of cell text one table may use: the message as a whole keeps under 8,000.
TABLE_TEXT_BUDGET = 6_000
ID_MAX = 60


def _cell(text: str) -> dict[str, Any]:
    return {"type": "raw_text", "text": text or "—"}


def item_table(items: Sequence[ItemState]) -> Block | None:
    """Platform, severity, title and id of each item under a header row; None for more than 99 items."""
    if not items or len(items) > TABLE_ROWS_MAX - 1:
        return None
    budget = TABLE_TEXT_BUDGET // len(items)
    rows: list[list[dict[str, Any]]] = [[_cell(h) for h in ("Platform", "Severity", "Title", "Id")]]
    for item in items:
        platform, severity = item.target.platform.label, cut(item.severity or "—", 12)
        key = cut(item.target.key, ID_MAX)
        title_max = max(8, budget - len(platform) - len(severity) - len(key))
        rows.append([_cell(platform), _cell(severity), _cell(cut(item.title or "—", title_max)), _cell(key)])
    return {
        "type": "table",
        "column_settings": [{"align": "left"}, {"align": "left"}, {"is_wrapped": True}, {"is_wrapped": True}],
        "rows": rows,
    }
