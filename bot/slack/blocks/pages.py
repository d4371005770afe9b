"""A job's reply, split into thread messages that each stay well inside Slack's limits.

The rule (``result_pages``):

* Every message has at most 50 blocks, no section over 3,000 characters and at most
  ``PAGE_TEXT_BUDGET`` (8,000) characters of text in all — Slack starts refusing messages
  (``msg_blocks_too_long``) around 12,000, so this keeps a third in hand.
* The first message holds the summary (who did what, the counts per outcome), then the
  items that need a look: failed, not found, done with warnings, in that order.
* Everything that does not fit, and the skipped and done items, follow in further
  messages in the same thread ("part 2 of 5"), each within the same budget. No item is
  ever dropped as "…and N more".
* A job of more than ``CSV_THRESHOLD`` (200) items also gets a CSV of every item's
  outcome in the thread (``bot.slack.replies``, via ``files_upload_v2``). Then the
  messages keep only the summary and the items that need a look, as many as fit in the
  first message, and say how many more are in the CSV. When the upload fails the reply
  falls back to listing every item in messages, so nothing is lost either way.

Pure: builds dicts, does no I/O.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from bot.models import BatchResult, ItemResult, Outcome, Verb
from bot.slack.blocks._kit import (
    CHUNK_MAX,
    MESSAGE_TEXT_MAX,
    OUTCOME_LABEL,
    OUTCOME_ORDER,
    SECTION_TEXT_MAX,
    Block,
    _context,
    _section,
    cut,
    mention,
)
from bot.slack.blocks.results import _counts_line, _item_line

__all__ = [
    "CSV_THRESHOLD",
    "PAGE_BLOCKS_MAX",
    "PAGE_TEXT_BUDGET",
    "needs_csv",
    "result_csv",
    "result_pages",
    "result_pages_text",
]

PAGE_BLOCKS_MAX = 50
PAGE_TEXT_BUDGET = 8_000
# Above this many items the thread gets a CSV of every outcome and the messages stay short.
CSV_THRESHOLD = 200
# Outcomes listed first, in the first message: the ones someone has to look at.
NEEDS_A_LOOK: tuple[Outcome, ...] = (Outcome.FAILED, Outcome.NOT_FOUND, Outcome.WARNING)
# Room kept in every page for its "part i of n" line and a closing "…N more in the CSV".
_PAGE_RESERVE = 300
# A cell a spreadsheet would run as a formula (CSV injection): vendor text is data.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def needs_csv(result: BatchResult) -> bool:
    """Whether a job is big enough to get a CSV of its items."""
    return len(result.items) > CSV_THRESHOLD


def _grouped(result: BatchResult, outcomes: Sequence[Outcome]) -> list[str]:
    """Heading plus item lines, per outcome present, in ``outcomes`` order."""
    lines: list[str] = []
    for outcome in outcomes:
        items = [i for i in result.items if i.outcome is outcome]
        if items:
            lines.append(f"*{OUTCOME_LABEL[outcome].capitalize()} ({len(items)})*")
            lines += [_item_line(i) for i in items]
    return lines


class _Page:
    """One message being filled: sections of packed lines, within the block and text budgets."""

    def __init__(self, blocks: list[Block], used: int) -> None:
        self.blocks = blocks
        self.used = used
        self.current = ""
        self.lines = 0

    def fits(self, line: str) -> bool:
        # At most the open section and one new one more, plus the page's own context lines.
        blocks = len(self.blocks) + 2 + 2
        return self.used + len(line) + 1 <= PAGE_TEXT_BUDGET - _PAGE_RESERVE and blocks <= PAGE_BLOCKS_MAX

    def add(self, line: str) -> None:
        if self.current and len(self.current) + 1 + len(line) > CHUNK_MAX:
            self.flush()
        self.current = f"{self.current}\n{line}" if self.current else line
        self.used += len(line) + 1
        self.lines += 1

    def flush(self) -> None:
        if self.current:
            self.blocks.append(_section(self.current))
            self.current = ""


def _fill(pages: list[_Page], lines: Sequence[str], *, more: bool) -> int:
    """Put ``lines`` on the last page, opening pages as needed when ``more``; returns how
    many lines were placed (all of them when ``more``)."""
    placed = 0
    for line in lines:
        line = cut(line, CHUNK_MAX)
        if not pages[-1].fits(line):
            if not more:
                return placed
            pages.append(_Page([], 0))
        pages[-1].add(line)
        placed += 1
    return placed


def result_pages(
    verb: Verb, result: BatchResult, *, actor_id: str, summary: str, csv_attached: bool = False
) -> list[list[Block]]:
    """The reply to a job as thread messages (the module docstring gives the rule).

    ``csv_attached``: the CSV of every item is in the thread, so only the items that need
    a look are listed, as many as fit in the first message. ``summary`` is bot mrkdwn.
    """
    head = cut(f"{mention(actor_id)} {summary}".strip(), SECTION_TEXT_MAX)
    counts = cut(f"`/triage {verb.value}` · {_counts_line(result)}", SECTION_TEXT_MAX)
    pages = [_Page([_section(head), _context(counts)], len(head) + len(counts))]
    if not result.items:
        pages[0].add("_No items._")
    problems = _grouped(result, NEEDS_A_LOOK)
    if csv_attached:
        placed = _fill(pages, problems, more=False)
        pages[0].flush()
        listed = sum(1 for line in problems[:placed] if not line.startswith("*"))
        rest = len(result.items) - listed
        note = f"The attached CSV has all {len(result.items)} items"
        if rest and listed:
            note += f"; {rest} more are only there"
        pages[0].blocks.append(_context(note + "."))
        return [pages[0].blocks]
    _fill(pages, problems, more=True)
    _fill(pages, _grouped(result, [o for o in OUTCOME_ORDER if o not in NEEDS_A_LOOK]), more=True)
    for page in pages:
        page.flush()
    total = len(pages)
    out: list[list[Block]] = []
    for number, page in enumerate(pages, start=1):
        blocks = page.blocks
        if number > 1:
            blocks = [_context(f"`/triage {verb.value}` · part {number} of {total}"), *blocks]
        elif total > 1:
            blocks.append(_context(f"Part 1 of {total}: the rest of the items follow in this thread."))
        out.append(blocks)
    return out


def result_pages_text(verb: Verb, result: BatchResult, *, actor_id: str, summary: str, part: int, total: int) -> str:
    """The fallback text of page ``part`` (1-based) of ``result_pages``."""
    counts = ", ".join(f"{n} {OUTCOME_LABEL[o]}" for o in OUTCOME_ORDER if (n := result.counts.get(o, 0)))
    text = f"{mention(actor_id)} {summary} ({counts or 'no items'})"
    if total > 1:
        text += f" — part {part} of {total}"
    return cut(text, MESSAGE_TEXT_MAX)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def result_csv(result: BatchResult) -> str:
    """Every item's outcome as CSV (key, platform, id, outcome, status, detail, before, after)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["key", "platform", "id", "outcome", "status", "detail", "before", "after"])
    item: ItemResult
    for item in result.items:
        t = item.target
        row = [t.key, t.platform.value, t.id, item.outcome.value, item.status, item.detail, item.before, item.after]
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()
