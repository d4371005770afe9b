"""Short replies: whoami identities, help, and usage errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot import rules
from bot.models import Platform
from bot.slack.blocks._kit import (
    MESSAGE_TEXT_MAX,
    SECTION_TEXT_MAX,
    Block,
    _context,
    _pack,
    _section,
    esc,
    esc_cut,
    mention,
)

if TYPE_CHECKING:
    from bot.core.identity import IdentityStatus


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
    """Help text (``commands.help_text``) as sections; ``<``/``>`` in the syntax are escaped
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
