"""Block Kit primitives every builder shares: Slack's limits, escaping and truncation,
mentions and dates, and the small block constructors. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.models import Outcome, Target
from bot.slack.ids import ActionId

if TYPE_CHECKING:
    pass

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
# msg_blocks_too_long appears around 12k characters of text; stay well under it (8,000 with the
# context lines of a page: bot.slack.blocks.pages).
TEXT_BUDGET = 7_500
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
