"""Replies that report a batch of per-item results."""

from __future__ import annotations

from bot.models import BatchResult, ItemResult, Outcome, Verb
from bot.slack.blocks._kit import (
    MESSAGE_TEXT_MAX,
    OUTCOME_EMOJI,
    OUTCOME_LABEL,
    OUTCOME_ORDER,
    SECTION_TEXT_MAX,
    TEXT_BUDGET,
    Block,
    _context,
    _key,
    _pack,
    _section,
    cut,
    esc_cut,
    keep_user_mentions,
    mention,
)

# ---------------------------------------------------------------- results


def _counts_line(result: BatchResult) -> str:
    counts = result.counts
    parts = [f"{OUTCOME_EMOJI[o]} {counts[o]} {OUTCOME_LABEL[o]}" for o in OUTCOME_ORDER if counts.get(o)]
    return " · ".join(parts) or "no items"


def _item_line(item: ItemResult) -> str:
    line = f"{OUTCOME_EMOJI[item.outcome]} {_key(item.target)}"
    detail = item.detail.strip()
    # A refusal already reads "Datadog refused (403): …": the status is not repeated.
    if item.status and item.outcome in (Outcome.FAILED, Outcome.NOT_FOUND) and f"({item.status})" not in detail:
        detail = f"{item.status} {detail}".strip()
    if detail:
        line += f" — {keep_user_mentions(esc_cut(detail, 300))}"
    return line


def _item_lines(result: BatchResult, *, budget: int) -> list[str]:
    """Lines grouped by outcome (failures first); each group ends "…and N more" once the
    character budget is spent, so any number of items fits."""
    groups = {o: [i for i in result.items if i.outcome is o] for o in OUTCOME_ORDER}
    present = [o for o in OUTCOME_ORDER if groups[o]]
    # Keep room for every group's heading and "…and N more" line.
    reserve = 90 * len(present)
    lines: list[str] = []
    used = 0
    for outcome in present:
        items = groups[outcome]
        heading = f"*{OUTCOME_LABEL[outcome].capitalize()} ({len(items)})*"
        lines.append(heading)
        used += len(heading) + 1
        reserve -= 90
        listed = 0
        for item in items:
            line = _item_line(item)
            if used + len(line) + 1 > budget - reserve - 60:
                break
            lines.append(line)
            used += len(line) + 1
            listed += 1
        if listed < len(items):
            more = f"…and {len(items) - listed} more {OUTCOME_LABEL[outcome]}"
            lines.append(more)
            used += len(more) + 1
    return lines


def result_blocks(verb: Verb, result: BatchResult, *, actor_id: str, summary: str) -> list[Block]:
    """The threaded reply to an operation: "<@actor> <summary>", the counts per outcome,
    and one line per item (emoji, key, vendor reason), grouped and truncated to stay
    within Slack's block and text limits. ``summary`` is bot-written mrkdwn."""
    head = cut(f"{mention(actor_id)} {summary}".strip(), SECTION_TEXT_MAX)
    counts = f"`/triage {verb.value}` · {_counts_line(result)}"
    blocks: list[Block] = [_section(head), _context(counts)]
    budget = TEXT_BUDGET - len(head) - len(counts)
    lines = _item_lines(result, budget=budget) if result.items else ["_No items._"]
    blocks += [_section(chunk) for chunk in _pack(lines)]
    return blocks


def lists_every_item(result: BatchResult, *, actor_id: str, summary: str) -> bool:
    """Whether ``result_blocks`` names every item (no group ends in "…and N more")."""
    head = cut(f"{mention(actor_id)} {summary}".strip(), SECTION_TEXT_MAX)
    budget = TEXT_BUDGET - len(head) - len("`/triage handoff` · ") - len(_counts_line(result))
    return sum(1 for line in _item_lines(result, budget=budget) if line.startswith("…and ")) == 0


def result_text(verb: Verb, result: BatchResult, *, actor_id: str, summary: str) -> str:
    """The fallback text of ``result_blocks``."""
    counts = ", ".join(f"{n} {OUTCOME_LABEL[o]}" for o in OUTCOME_ORDER if (n := result.counts.get(o, 0)))
    return cut(f"{mention(actor_id)} {summary} ({counts or 'no items'})", MESSAGE_TEXT_MAX)
