"""Alert cards: one item's state with its action buttons, and the card of a missing item."""

from __future__ import annotations

from collections.abc import Sequence

from bot import rules
from bot.models import ItemState, Outcome, Target, Verb
from bot.slack.blocks._kit import (
    FIELD_MAX,
    HEADER_MAX,
    OUTCOME_EMOJI,
    URL_MAX,
    Block,
    _button,
    _context,
    _key,
    _md,
    _plain,
    _section,
    esc_cut,
    mention,
)
from bot.slack.ids import ActionId
from bot.slack.metadata import CardRef

# ---------------------------------------------------------------- alert cards


def _assignee_text(state: ItemState, mentions: Sequence[str]) -> str:
    parts: list[str]
    if mentions:
        parts = [m if m.startswith("<") else mention(m) for m in mentions]
    elif state.assignee_name:
        parts = [esc_cut(state.assignee_name, 200)]
    elif state.assignees:
        parts = [f"`{esc_cut(a, 200)}`" for a in state.assignees]
    else:
        return "_unassigned_"
    text = ""
    for index, part in enumerate(parts):
        candidate = f"{text}, {part}" if text else part
        if len(candidate) > FIELD_MAX - 40:
            return f"{text} and {len(parts) - index} more"
        text = candidate
    return text


def alert_card(
    state: ItemState,
    *,
    assignee_mentions: Sequence[str],
    actor_note: str | None = None,
    channel: str | None = None,
    ts: str | None = None,
    thread_ts: str | None = None,
) -> list[Block]:
    """The card of one item: title header, severity/status/assignee(/case) fields, a link
    button, an optional context line, and the action buttons (each valued with a CardRef).

    ``assignee_mentions`` are Slack user ids or mentions of the assignees the bot
    could map; without them the platform's name or ids are shown. ``actor_note`` is
    bot-written mrkdwn such as ``updated_note(...)``. ``channel``/``ts``/``thread_ts``
    go into the buttons' CardRef when the card's place is already known. Raises
    ``ValueError`` only if the CardRef cannot fit a button value (an id of over 1,900
    characters, which the parser never produces).
    """
    target = state.target
    label = target.platform.label
    title = state.title.strip() or target.key
    fields = [
        _md(f"*Severity*\n{esc_cut(state.severity or '—', FIELD_MAX - 20)}"),
        _md(f"*Status*\n{esc_cut(state.status or '—', FIELD_MAX - 20)}"),
        _md(f"*Assignee*\n{_assignee_text(state, assignee_mentions)}"),
    ]
    if rules.supports(target.platform, Verb.ATTACH):
        fields.append(_md(f"*Case*\n{esc_cut(state.case or '—', FIELD_MAX - 20)}"))
    fields += _vocabulary_fields(state)
    section: Block = {"type": "section", "text": _md(f"{label} {_key(target, 500)}"), "fields": fields}
    if state.link and len(state.link) <= URL_MAX and state.link.startswith(("https://", "http://")):
        section["accessory"] = _button(f"Open in {label}", ActionId.OPEN_LINK, url=state.link)
    blocks: list[Block] = [
        {"type": "header", "text": _plain(f"{label}: {title}", HEADER_MAX)},
        section,
    ]
    if actor_note:
        blocks.append(_context(actor_note))
    value = CardRef(target=target, channel=channel, ts=ts, thread_ts=thread_ts).dumps()
    buttons = [
        _button("Assign to me", ActionId.ASSIGN_ME, value=value, style="primary"),
        _button("Assign…", ActionId.ASSIGN_OPEN, value=value),
        _button("Unassign", ActionId.UNASSIGN, value=value),
    ]
    if rules.supports(target.platform, Verb.ATTACH):
        buttons.append(_button("Attach to case…", ActionId.ATTACH_OPEN, value=value))
    buttons += _status_buttons(state, value)
    buttons.append(_button("Refresh", ActionId.REFRESH, value=value))
    blocks.append({"type": "actions", "elements": buttons})
    return blocks


def _vocabulary_fields(state: ItemState) -> list[dict[str, str]]:
    """Datadog's mute (why and until when) and Xpanse's alert count and top assets."""
    fields: list[dict[str, str]] = []
    caps = rules.CAPABILITIES[state.target.platform]
    if caps.mute and state.muted is not None:
        muted = "no"
        if state.muted:
            why = f" ({esc_cut(state.mute_reason, 100)})" if state.mute_reason else ""
            muted = f"yes{why}, until {rules.vocabulary.expiry_text(state.mute_until)}"
        fields.append(_md(f"*Muted*\n{muted}"))
    if state.alert_count is not None:
        fields.append(_md(f"*Alerts*\n{state.alert_count}"))
    if state.top_assets:
        fields.append(_md("*Top assets*\n" + esc_cut(", ".join(state.top_assets), FIELD_MAX - 20)))
    return fields


def _status_buttons(state: ItemState, value: str) -> list[Block]:
    """Mute… / Unmute and Detach on Datadog; Acknowledge, Close… / Reopen and Tags… on Kibana;
    Resolve… / Reopen on Xpanse: each shown when the item's state allows it."""
    platform = state.target.platform
    caps = rules.CAPABILITIES[platform]
    buttons: list[Block] = []
    if caps.detach and state.case:
        buttons.append(_button("Detach from case", ActionId.DETACH, value=value))
    if caps.mute:
        if state.muted:
            buttons.append(_button("Unmute", ActionId.UNMUTE, value=value))
        else:
            buttons.append(_button("Mute…", ActionId.MUTE_OPEN, value=value))
        return buttons
    if caps.acknowledge and (state.status or "").lower() == rules.vocabulary.KIBANA_OPEN:
        buttons.append(_button("Acknowledge", ActionId.ACK, value=value))
    if caps.resolve and state.is_open:
        buttons.append(_button("Resolve…", ActionId.RESOLVE_OPEN, value=value))
    elif caps.reopen and not state.is_open:
        buttons.append(_button("Reopen", ActionId.REOPEN, value=value))
    if caps.tag:
        buttons.append(_button("Tags…", ActionId.TAG_OPEN, value=value))
    return buttons


def alert_card_text(state: ItemState) -> str:
    """The fallback text of an alert card."""
    title = state.title.strip() or state.target.key
    status = f" ({state.status})" if state.status else ""
    return esc_cut(f"{state.target.platform.label}: {title} [{state.target.key}]{status}", 1000)


def missing_card(target: Target, reason: str) -> list[Block]:
    """The card for an item the platform does not hold (or could not be read), with why."""
    text = f"{OUTCOME_EMOJI[Outcome.NOT_FOUND]} {target.platform.label} {_key(target, 500)}"
    return [_section(f"{text}\n{esc_cut(reason or 'not found', 2000)}")]


def missing_card_text(target: Target, reason: str) -> str:
    """The fallback text of ``missing_card``."""
    return esc_cut(f"{target.key}: {reason or 'not found'}", 1000)
