"""The App Home view of one analyst, and the compact card a pasted platform link unfurls into."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot import rules
from bot.models import ItemState, Job, Platform
from bot.slack.blocks._kit import (
    FIELD_MAX,
    URL_MAX,
    Block,
    _button,
    _context,
    _md,
    _plain,
    _section,
    esc_cut,
)
from bot.slack.blocks.cards import _assignee_text, alert_card
from bot.slack.ids import ActionId
from bot.slack.metadata import CardRef

# Each item takes two blocks; Slack allows 100 per Home tab, so keep room for headers.
HOME_ITEMS_MAX = 40
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")


def _severity_rank(state: ItemState) -> int:
    severity = (state.severity or "").lower()
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def _item_blocks(state: ItemState) -> list[Block]:
    target = state.target
    title = esc_cut(state.title.strip() or target.key, 200)
    line = f"*{title}*  `{esc_cut(target.key, 300)}`\n{esc_cut(state.status or '—', 100)}"
    value = CardRef(target=target).dumps()
    resolve = ActionId.MUTE_OPEN if rules.CAPABILITIES[target.platform].mute else ActionId.RESOLVE_OPEN
    buttons = [
        _button("Assign…", ActionId.ASSIGN_OPEN, value=value),
        _button("Resolve…", resolve, value=value),
    ]
    if state.link and len(state.link) <= URL_MAX and state.link.startswith(("https://", "http://")):
        buttons.append(_button("Open", ActionId.OPEN_LINK, url=state.link))
    return [_section(line), {"type": "actions", "elements": buttons}]


def home_view(
    user: str, held: Mapping[Platform, list[ItemState] | str], handoffs: Sequence[Job] = ()
) -> dict[str, Any]:
    """The Home tab: the user's open items per platform and severity (each with Assign…,
    Resolve… and Open), the handoffs waiting on them, and a Refresh button."""
    blocks: list[Block] = [
        {"type": "header", "text": _plain("Your open items", 150)},
        {"type": "actions", "elements": [_button("Refresh", ActionId.HOME_REFRESH, value=user)]},
    ]
    shown = 0
    hidden = 0
    for platform, items in held.items():
        blocks.append({"type": "divider"})
        if isinstance(items, str):
            blocks.append(_section(f"*{platform.label}*: {esc_cut(items, 2000)}"))
            continue
        blocks.append(
            _section(f"*{platform.label}* ({len(items)} open)" if items else f"*{platform.label}*: nothing open")
        )
        severity: str | None = None
        for state in sorted(items, key=_severity_rank):
            if shown >= HOME_ITEMS_MAX:
                hidden += 1
                continue
            if (state.severity or "—") != severity:
                severity = state.severity or "—"
                blocks.append(_context(f"Severity: *{esc_cut(severity, 100)}*"))
            blocks += _item_blocks(state)
            shown += 1
    if hidden:
        blocks.append(_context(f"…and {hidden} more; `/triage mine` lists them all."))
    blocks.append({"type": "divider"})
    if handoffs:
        lines = [
            f"• from <@{job.params.from_user or job.actor_id}> to <@{job.params.assignee}>: waiting for Confirm"
            for job in handoffs[:10]
        ]
        blocks.append(_section("*Pending handoffs*\n" + "\n".join(lines)))
    else:
        blocks.append(_context("No pending handoffs."))
    return {"type": "home", "blocks": blocks[:100]}


def unfurl_card(state: ItemState, *, assignee_mentions: Sequence[str]) -> list[Block]:
    """A compact card for a pasted link: title, severity, status and assignee, with the card's buttons."""
    target = state.target
    title = esc_cut(state.title.strip() or target.key, 500)
    section: Block = {
        "type": "section",
        "text": _md(f"*{target.platform.label}: {title}*  `{esc_cut(target.key, 300)}`"),
        "fields": [
            _md(f"*Severity*\n{esc_cut(state.severity or '—', FIELD_MAX - 20)}"),
            _md(f"*Status*\n{esc_cut(state.status or '—', FIELD_MAX - 20)}"),
            _md(f"*Assignee*\n{_assignee_text(state, assignee_mentions)}"),
        ],
    }
    actions = alert_card(state, assignee_mentions=assignee_mentions)[-1]
    return [section, actions]
