"""Pure Block Kit builders: alert cards, modals, result replies, handoff, help and errors.

Every function returns plain dicts (``chat.postMessage``'s ``blocks`` or a
``views.open`` view), and has a ``*_text`` companion for the message's ``text``
(the notification and screen-reader fallback). Nothing here does I/O.

Limits (shared/slack/NOTES.md §4) are enforced by construction: vendor text is
truncated to each field's limit, a reply stays within 50 blocks and about 11,000
characters of text however many items it reports, and every Slack-carried state
goes through ``bot.slack.metadata`` (which refuses oversize values).

Vendor and user text is escaped (``&`` ``<`` ``>``) before it goes into mrkdwn, so a
finding titled ``<!channel>`` cannot ping a channel; ``summary`` and ``actor_note``
arguments are mrkdwn written by the bot (they may hold mentions) and are not escaped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot import rules
from bot.errors import UnsupportedError
from bot.models import BatchResult, ItemResult, ItemState, Outcome, Platform, Target, Verb
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.metadata import CardRef, HandoffRef, ModalMeta

if TYPE_CHECKING:
    from bot.core.identity import IdentityStatus

Block = dict[str, Any]

# Slack's limits (NOTES.md §4), named where they are used.
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_MAX = 2000
BUTTON_TEXT_MAX = 75
URL_MAX = 3000
MODAL_TITLE_MAX = 24
OPTION_TEXT_MAX = 75
MESSAGE_TEXT_MAX = 4000  # Slack truncates at 40k; we keep fallbacks far below that
# msg_blocks_too_long appears around 12k characters of text; stay well under it.
TEXT_BUDGET = 11_000
# Packing lines into sections: a little under the section limit.
CHUNK_MAX = 2900

OUTCOME_ORDER: tuple[Outcome, ...] = (
    Outcome.FAILED,
    Outcome.NOT_FOUND,
    Outcome.WARNING,
    Outcome.SKIPPED,
    Outcome.DONE,
)
OUTCOME_EMOJI: dict[Outcome, str] = {
    Outcome.DONE: ":white_check_mark:",
    Outcome.WARNING: ":warning:",
    Outcome.NOT_FOUND: ":grey_question:",
    Outcome.FAILED: ":x:",
    Outcome.SKIPPED: ":fast_forward:",
}
OUTCOME_LABEL: dict[Outcome, str] = {
    Outcome.DONE: "done",
    Outcome.WARNING: "done with warnings",
    Outcome.NOT_FOUND: "not found",
    Outcome.FAILED: "failed",
    Outcome.SKIPPED: "skipped",
}

PAST_TENSE: dict[Verb, str] = {
    Verb.ASSIGN: "assigned",
    Verb.UNASSIGN: "unassigned",
    Verb.ATTACH: "attached",
    Verb.RESOLVE: "resolved",
    Verb.COMMENT: "commented on",
    Verb.SEVERITY: "set the severity of",
    Verb.REFRESH: "refreshed",
    Verb.HANDOFF: "handed off",
}


# ---------------------------------------------------------------- text helpers


def esc(text: str) -> str:
    """Escape text for Slack mrkdwn / message text (``&`` ``<`` ``>``); never fails."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """``text`` shortened to at most ``limit`` characters, ending in "…" when shortened."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def esc_cut(text: str, limit: int) -> str:
    """``text`` escaped for mrkdwn and shortened so the *escaped* form fits ``limit``,
    never splitting an escape such as ``&amp;``."""
    escaped = esc(text)
    if len(escaped) <= limit:
        return escaped
    pieces: list[str] = []
    used = 0
    for char in text:
        piece = esc(char)
        if used + len(piece) > limit - 1:
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces).rstrip() + "…"


_ESCAPED_USER_MENTION = re.compile(r"&lt;@([UW][A-Z0-9]{2,20})&gt;")


def keep_user_mentions(escaped: str) -> str:
    """Turn escaped user mentions (``&lt;@U123&gt;``) in ``esc`` output back into mentions.

    Item details mix vendor text with the bot's own messages, which name people
    ("<@U123> has no Kibana profile"); a user mention only renders a name, while
    ``<!channel>``-style broadcasts and links stay escaped.
    """
    return _ESCAPED_USER_MENTION.sub(r"<@\1>", escaped)


def mention(user_id: str) -> str:
    """A Slack mention of a user id."""
    return f"<@{user_id}>"


def slack_date(when: datetime) -> str:
    """A Slack date token that renders in each reader's time zone, with a UTC fallback."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def updated_note(actor_id: str, when: datetime) -> str:
    """The card's context line: "updated <time> by <@actor>" (pass it as ``actor_note``)."""
    return f"updated {slack_date(when)} by {mention(actor_id)}"


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(text, limit) or "—", "emoji": True}


def _md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or " "}


def _section(text: str, **extra: Any) -> Block:
    return {"type": "section", "text": _md(cut(text, SECTION_TEXT_MAX)), **extra}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [_md(cut(text, SECTION_TEXT_MAX))]}


def _button(
    text: str,
    action_id: ActionId,
    *,
    value: str | None = None,
    url: str | None = None,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": _plain(text, BUTTON_TEXT_MAX),
        "action_id": action_id.value,
    }
    if value is not None:
        button["value"] = value
    if url is not None:
        button["url"] = url
    if style is not None:
        button["style"] = style
    if confirm is not None:
        button["confirm"] = confirm
    return button


def _confirm(title: str, text: str, *, confirm: str, deny: str = "Cancel") -> dict[str, Any]:
    return {
        "title": _plain(title, 100),
        "text": _plain(text, 300),
        "confirm": _plain(confirm, 30),
        "deny": _plain(deny, 30),
    }


def _key(target: Target, limit: int = 120) -> str:
    """A target's key as inline code (ids never hold a backtick; very long ones are cut)."""
    return f"`{esc_cut(target.key, limit)}`"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _pack(lines: Sequence[str], *, limit: int = CHUNK_MAX) -> list[str]:
    """Join lines into as few chunks of at most ``limit`` characters as possible."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        line = cut(line, limit)
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def _target_lines(targets: Sequence[Target], *, budget: int) -> list[str]:
    """One bullet per target within ``budget`` characters, then "…and N more"."""
    lines: list[str] = []
    used = 0
    for index, target in enumerate(targets):
        line = f"• {_key(target)}"
        if used + len(line) + 1 > budget - 30:
            lines.append(f"…and {len(targets) - index} more")
            break
        lines.append(line)
        used += len(line) + 1
    return lines


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
    if rules.supports(target.platform, Verb.RESOLVE) and state.is_open:
        buttons.append(_button("Resolve…", ActionId.RESOLVE_OPEN, value=value))
    buttons.append(_button("Refresh", ActionId.REFRESH, value=value))
    blocks.append({"type": "actions", "elements": buttons})
    return blocks


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


# ---------------------------------------------------------------- modals


def _modal(callback_id: CallbackId, title: str, submit: str, meta: ModalMeta, blocks: list[Block]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id.value,
        "title": _plain(title, MODAL_TITLE_MAX),
        "submit": _plain(submit, MODAL_TITLE_MAX),
        "close": _plain("Cancel", MODAL_TITLE_MAX),
        "private_metadata": meta.dumps(),
        "blocks": blocks,
    }


def _items_section(meta: ModalMeta) -> Block:
    head = f"*{_count(len(meta.targets), 'item')}*"
    lines = _target_lines(meta.targets, budget=SECTION_TEXT_MAX - len(head) - 1)
    return _section("\n".join([head, *lines]))


def assign_modal(meta: ModalMeta) -> dict[str, Any]:
    """The "Assign…" modal: the items and a user picker (``BlockId``/``ActionId.ASSIGN_USER``);
    raises ``ValueError`` if ``meta`` does not fit ``private_metadata``."""
    picker = {
        "type": "input",
        "block_id": BlockId.ASSIGN_USER.value,
        "label": _plain("Assign to", 2000),
        "element": {
            "type": "users_select",
            "action_id": ActionId.ASSIGN_USER.value,
            "placeholder": _plain("Choose a person", 150),
        },
    }
    return _modal(CallbackId.ASSIGN_MODAL, "Assign", "Assign", meta, [_items_section(meta), picker])


def attach_modal(meta: ModalMeta) -> dict[str, Any]:
    """The "Attach to case…" modal: the findings and a case key/UUID text input;
    raises ``ValueError`` if ``meta`` does not fit ``private_metadata``."""
    case_input = {
        "type": "input",
        "block_id": BlockId.ATTACH_CASE.value,
        "label": _plain("Datadog case key or UUID", 2000),
        "hint": _plain("Findings already in another case move to this one.", 2000),
        "element": {
            "type": "plain_text_input",
            "action_id": ActionId.ATTACH_CASE.value,
            "placeholder": _plain("SEC-123 or 4b1c9d2e-…", 150),
            "max_length": 64,
        },
    }
    return _modal(CallbackId.ATTACH_MODAL, "Attach to case", "Attach", meta, [_items_section(meta), case_input])


def reason_label(reason: str) -> str:
    """A human label for a platform reason (``resolved_-_no_risk`` → "Resolved – no risk")."""
    text = reason.replace("_-_", " – ").replace("_", " ")
    return text[:1].upper() + text[1:]


def resolve_modal(meta: ModalMeta, *, platform: Platform) -> dict[str, Any]:
    """The "Resolve…" modal for one platform: a reason select with that platform's valid
    reasons and a multi-line comment. Raises ``UnsupportedError`` for a platform without
    a resolve operation (Datadog) and ``ValueError`` if ``meta`` does not fit."""
    reasons = rules.RESOLVE_REASONS.get(platform)
    if not reasons:
        raise UnsupportedError(f"{platform.label} items cannot be resolved from Slack")
    options = [{"text": _plain(reason_label(r), OPTION_TEXT_MAX), "value": r} for r in reasons]
    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": ActionId.RESOLVE_REASON.value,
        "placeholder": _plain("Choose a reason", 150),
        "options": options,
    }
    # Xpanse needs a resolved_* status to resolve at all; Kibana's reason is optional.
    required = rules.CAPABILITIES[platform].reason_required
    if required:
        select["initial_option"] = options[0]
    reason_input = {
        "type": "input",
        "block_id": BlockId.RESOLVE_REASON.value,
        "label": _plain("Reason", 2000),
        "optional": not required,
        "element": select,
    }
    comment_input = {
        "type": "input",
        "block_id": BlockId.RESOLVE_COMMENT.value,
        "label": _plain("Comment", 2000),
        "optional": True,
        "element": {
            "type": "plain_text_input",
            "action_id": ActionId.RESOLVE_COMMENT.value,
            "multiline": True,
            "max_length": 3000,
            "placeholder": _plain("Why is this being resolved?", 150),
        },
    }
    title = "Close alerts" if platform is Platform.KIBANA else "Resolve incidents"
    submit = "Close" if platform is Platform.KIBANA else "Resolve"
    return _modal(
        CallbackId.RESOLVE_MODAL,
        title,
        submit,
        meta,
        [_items_section(meta), reason_input, comment_input],
    )


# ---------------------------------------------------------------- results


def _counts_line(result: BatchResult) -> str:
    counts = result.counts
    parts = [f"{OUTCOME_EMOJI[o]} {counts[o]} {OUTCOME_LABEL[o]}" for o in OUTCOME_ORDER if counts.get(o)]
    return " · ".join(parts) or "no items"


def _item_line(item: ItemResult) -> str:
    line = f"{OUTCOME_EMOJI[item.outcome]} {_key(item.target)}"
    detail = item.detail.strip()
    if item.status and item.outcome in (Outcome.FAILED, Outcome.NOT_FOUND):
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


def result_text(verb: Verb, result: BatchResult, *, actor_id: str, summary: str) -> str:
    """The fallback text of ``result_blocks``."""
    counts = ", ".join(f"{n} {OUTCOME_LABEL[o]}" for o in OUTCOME_ORDER if (n := result.counts.get(o, 0)))
    return cut(f"{mention(actor_id)} {summary} ({counts or 'no items'})", MESSAGE_TEXT_MAX)


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
    items (truncated), a warning for platforms where the receiver has no identity, and
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
    blocks += [_section(chunk) for chunk in _pack(lines)]
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


# ---------------------------------------------------------------- identities

_SOURCE_LABEL = {
    "auto": "found by Slack e-mail",
    "self": "mapped by themselves",
    "admin": "mapped by an admin",
}


def _age(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"  # pragma: no cover - the loop always returns for seconds >= 90


def whoami_lines(user_id: str, statuses: Sequence[IdentityStatus], *, configured: Sequence[Platform]) -> list[str]:
    """``/triage whoami``: one mrkdwn line per platform with the identity, where it came from,
    and whether it still holds; unmapped platforms say how the mapping will be made."""
    lines = [f"*Identities of {mention(user_id)}*"]
    for status in statuses:
        label = status.platform.label
        if status.value is None:
            if status.platform not in configured:
                lines.append(f"• *{label}*: not configured in this bot")
                continue
            example = esc(rules.IDENTITY_EXAMPLE[status.platform])
            hint = f"`/triage map {mention(user_id)} {status.platform.value}={example}`"
            lines.append(
                f"• *{label}*: not mapped yet — the bot looks the Slack e-mail up on first use, or map it with {hint}"
            )
            continue
        source = _SOURCE_LABEL.get(str(status.source or ""), "mapped")
        when = f" {_age(status.age.total_seconds())}" if status.age is not None else ""
        check = ""
        if status.verification is not None:
            v = status.verification
            check = {
                "ok": " · :white_check_mark: still valid",
                "drift": f" · :warning: {esc_cut(v.detail, 300)}",
            }.get(v.state, f" · :grey_question: not checked ({esc_cut(v.detail, 300)})")
        lines.append(f"• *{label}*: `{esc_cut(status.value, 300)}` ({source}{when}){check}")
    return lines


def whoami_blocks(user_id: str, statuses: Sequence[IdentityStatus], *, configured: Sequence[Platform]) -> list[Block]:
    """``whoami_lines`` as sections."""
    return [_section(chunk) for chunk in _pack(whoami_lines(user_id, statuses, configured=configured))]


def whoami_text(user_id: str) -> str:
    """The fallback text of ``whoami_blocks``."""
    return f"Identities of {mention(user_id)}"


# ---------------------------------------------------------------- help and errors


def help_blocks(text: str) -> list[Block]:
    """Help text (``parsing.help_text``) as sections; ``<``/``>`` in the syntax are escaped
    so Slack shows them instead of reading them as links or mentions."""
    return [_section(chunk) for chunk in _pack([esc(line) for line in text.splitlines()])][:40]


def help_fallback_text(text: str) -> str:
    """The fallback text of ``help_blocks``."""
    return esc_cut(text, MESSAGE_TEXT_MAX)


def usage_error_blocks(message: str) -> list[Block]:
    """A ``UsageError`` message for the actor, escaped, with a pointer to the help."""
    return [
        _section(f":warning: {esc_cut(message, SECTION_TEXT_MAX - 20)}"),
        _context("Type `/triage help` for every command."),
    ]


def usage_error_text(message: str) -> str:
    """The fallback text of ``usage_error_blocks``."""
    return esc_cut(message, MESSAGE_TEXT_MAX)
