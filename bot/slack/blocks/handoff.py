"""The handoff preview (with its confirm and cancel buttons) and its result."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from bot.models import BatchResult, HandoffPlan, ItemState, Outcome, Platform, Verb
from bot.slack.blocks._kit import (
    TEXT_BUDGET,
    Block,
    _button,
    _confirm,
    _context,
    _count,
    _key,
    _pack,
    _section,
    esc_cut,
    mention,
    slack_date,
)
from bot.slack.blocks.results import result_blocks, result_text
from bot.slack.blocks.tables import item_table
from bot.slack.ids import ActionId
from bot.slack.metadata import HandoffRef

# ---------------------------------------------------------------- handoff


def handoff_preview(
    ref: HandoffRef,
    *,
    from_user: str,
    to_user: str,
    items: Sequence[ItemState],
    unmapped: Sequence[Platform] = (),
) -> list[Block]:
    """The preview of a handoff: whose open items go to whom, per-platform counts, the
    items (a table of up to 99, else a truncated list), a warning for platforms where the receiver has no identity, and
    Confirm/Cancel buttons valued with ``ref`` (no buttons when there is nothing to move)."""
    if not items:
        return [_section(f"{mention(from_user)} has no open items to hand off to {mention(to_user)}.")]
    per_platform = Counter(i.target.platform for i in items)
    head = (
        f"*Handoff preview:* {_count(len(items), 'open item')} of {mention(from_user)} "
        f"will be assigned to {mention(to_user)}."
    )
    counts = " · ".join(f"{p.label} {per_platform[p]}" for p in Platform if per_platform.get(p))
    lines: list[str] = []
    used = 0
    budget = TEXT_BUDGET - 2000
    for index, item in enumerate(items):
        title = f" — {esc_cut(item.title, 150)}" if item.title else ""
        line = f"• {_key(item.target)}{title}"
        if used + len(line) + 1 > budget:
            lines.append(f"…and {len(items) - index} more")
            break
        lines.append(line)
        used += len(line) + 1
    blocks: list[Block] = [_section(head), _context(counts)]
    table = item_table(items)  # up to 99 items; more are listed in sections, cut to fit
    blocks += [table] if table is not None else [_section(chunk) for chunk in _pack(lines)]
    if unmapped:
        names = ", ".join(p.label for p in unmapped)
        blocks.append(
            _section(
                f":warning: {mention(to_user)} has no identity on {names}; those items will be "
                "skipped. Map one with `/triage map`."
            )
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                _button(
                    f"Hand off {_count(len(items), 'item')}",
                    ActionId.HANDOFF_CONFIRM,
                    value=ref.dumps(),
                    style="primary",
                    confirm=_confirm(
                        "Hand off?",
                        f"Reassign {_count(len(items), 'item')} on the platforms now.",
                        confirm="Hand off",
                    ),
                ),
                _button("Cancel", ActionId.HANDOFF_CANCEL, value=ref.dumps()),
            ],
        }
    )
    return blocks


def handoff_preview_text(*, from_user: str, to_user: str, items: Sequence[ItemState]) -> str:
    """The fallback text of ``handoff_preview``."""
    return f"Handoff preview: {_count(len(items), 'open item')} of {mention(from_user)} to {mention(to_user)}"


def handoff_result(ref: HandoffRef, *, result: BatchResult, actor_id: str, from_user: str, to_user: str) -> list[Block]:
    """The outcome of a handoff (as ``result_blocks``) plus a "Retry failed" button,
    valued with ``ref``, when some items failed."""
    summary = f"handed off {mention(from_user)}'s items to {mention(to_user)}"
    blocks = result_blocks(Verb.HANDOFF, result, actor_id=actor_id, summary=summary)
    failed = result.counts.get(Outcome.FAILED, 0)
    if failed:
        blocks.append(
            {
                "type": "actions",
                "elements": [_button(f"Retry {failed} failed", ActionId.RETRY_FAILED, value=ref.dumps())],
            }
        )
    return blocks


def handoff_result_text(*, result: BatchResult, actor_id: str, from_user: str, to_user: str) -> str:
    """The fallback text of ``handoff_result``."""
    summary = f"handed off {mention(from_user)}'s items to {mention(to_user)}"
    return result_text(Verb.HANDOFF, result, actor_id=actor_id, summary=summary)


def shift_change_note(plan: HandoffPlan, *, from_user: str, to_user: str) -> Block:
    """The line a shift-change preview carries: which schedule, and who may decide or when it applies."""
    head = f":calendar: Shift change on *{plan.schedule}*: {mention(from_user)} → {mention(to_user)}."
    if plan.auto_at is not None:
        when = slack_date(datetime.fromtimestamp(plan.auto_at, UTC))
        tail = f" Hands off automatically at {when} unless someone presses Cancel."
    else:
        tail = f" {mention(from_user)}, {mention(to_user)} or an admin may confirm or cancel."
    return _context(head + tail)
