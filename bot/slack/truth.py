"""What the reconciler posts: a card redrawn because its item changed outside Slack, and the
reminder in a card's thread. The cards themselves are the reporter's (``Reporter.card``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.models import ItemState
from bot.slack import blocks
from bot.slack.blocks._kit import _key, esc_cut, mention, slack_date
from bot.slack.reporter import Reporter

Blocks = list[dict[str, Any]]


def _value(value: Any) -> str:
    return esc_cut(str(value), 200) if value not in (None, "") else "—"


def duration_text(seconds: float) -> str:
    """``1800`` -> ``30m``, ``7200`` -> ``2h``, ``45`` -> ``45s``."""
    s = int(seconds)
    if s and s % 3600 == 0:
        return f"{s // 3600}h"
    if s and s % 60 == 0:
        return f"{s // 60}m"
    return f"{s}s"


class TrueCards:
    """The reconciler's renderer (``bot.core.reconcile.TruthRenderer``)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    async def _who(self, state: ItemState) -> str:
        found = await self.reporter.mentions(state)
        if found:
            return ", ".join(mention(u) for u in found)
        if state.assignee_name:
            return esc_cut(state.assignee_name, 200)
        return ", ".join(f"`{esc_cut(a, 100)}`" for a in state.assignees) or "nobody"

    async def change_line(self, state: ItemState, before: dict[str, Any], fields: Sequence[str], at: datetime) -> str:
        """``changed outside Slack: status open → closed, assignee → @bob · seen <date>``."""
        words = []
        for name in fields:
            if name == "assignees":
                words.append(f"assignee → {await self._who(state)}")
            elif name == "muted":
                words.append("muted" if state.muted else "unmuted")
            else:
                after = getattr(state, name)
                words.append(f"{name} {_value(before.get(name))} → {_value(after)}")
        return f":arrows_counterclockwise: changed outside Slack: {', '.join(words)} · seen {slack_date(at)}"

    async def changed(
        self, state: ItemState, before: dict[str, Any], fields: Sequence[str], at: datetime
    ) -> tuple[str, Blocks]:
        note = await self.change_line(state, before, fields, at)
        return blocks.alert_card_text(state), await self.reporter.card(state, note=note)

    def nudge(
        self, state: ItemState, *, schedule: str | None, mentions: Sequence[str], after_s: float
    ) -> tuple[str, Blocks]:
        severity = _value(state.severity)
        head = (
            f":alarm_clock: {state.target.platform.label} {_key(state.target)} (*{severity}*) is still "
            f"unassigned {duration_text(after_s)} after it was carded."
        )
        if mentions:
            who = ", ".join(mention(u) for u in mentions)
            tail = f" {who}, on call for *{esc_cut(schedule or '', 80)}*: can you take it?"
        elif schedule:
            tail = f" Nobody on call for *{esc_cut(schedule, 80)}* could be matched to a Slack user."
        else:
            tail = " No on-call schedule posts to this channel."
        text = head + tail
        return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
