"""The door's answers as Slack messages: ``render(answer)`` -> the body to send, or None.

Pure: no I/O. The body is what ``ack()`` or a ``response_url`` takes (``text`` and,
where it helps, ``blocks``); None means there is nothing to say (an empty ack).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.core import answers as a
from bot.errors import UsageError, UserError
from bot.models import Platform, Verb
from bot.slack import blocks
from bot.slack.commands import help_text, usage

Message = dict[str, Any]

TEXT_MAX = 3900
MINE_SHOWN = 20


def _items(n: int) -> str:
    return f"{n} item{'s' if n != 1 else ''}"


def capital(text: str) -> str:
    """``text`` with its first letter upper-case."""
    return text[:1].upper() + text[1:]


def user_error(exc: UserError) -> Message:
    """The reply to a command the actor can fix; usage errors end with the verb's usage line."""
    message = exc.message
    if isinstance(exc, UsageError):
        if exc.verb and "Usage:" not in message:
            try:
                message = f"{capital(message)}\nUsage: `{usage(Verb(exc.verb))}`"
            except ValueError:
                pass
        return {"text": blocks.usage_error_text(message), "blocks": blocks.usage_error_blocks(message)}
    return {"text": message}


def failure(ref: str) -> Message:
    """The message for a failure the actor cannot fix, with the reference that is also in the log."""
    return {"text": f"That did not work (reference {ref}). The team can find it in the bot's log."}


def render(answer: a.Answer) -> Message | None:
    """The Slack body for ``answer``, or None when there is nothing to say."""
    match answer:
        case a.Accepted(duplicate=True) | a.FormAllowed() | a.Authorised():
            return None
        case a.Accepted(verb=verb, count=n):
            return {"text": f"On it: {verb.value} {_items(n)}."}
        case a.Help(verb=verb):
            text = help_text(verb)
            return {"text": blocks.help_fallback_text(text), "blocks": blocks.help_blocks(text)}
        case a.Mapped(user=user, identities=mapped):
            lines = [f"{p.label}: `{i.value}`" for p in Platform if (i := mapped.get(p)) is not None]
            return {"text": f"Mapped <@{user}>: " + ", ".join(lines)}
        case a.Unmapped(user=user, platform=platform, removed=removed):
            if removed:
                return {"text": f"Removed <@{user}>'s {platform.label} mapping."}
            return {"text": f"<@{user}> had no {platform.label} mapping."}
        case a.History():
            return {"text": _history(answer)}
        case a.LookingUp(verb=Verb.ONCALL):
            return {"text": "Checking the on-call schedules…"}
        case a.OnCallOverview():
            return {"text": _oncall(answer)}
        case a.LookingUp(verb=Verb.WHOAMI, user=user):
            return {"text": f"Checking <@{user}>'s identities…"}
        case a.LookingUp(user=user):
            return {"text": f"Looking up what <@{user}> holds…"}
        case a.Identities(user=user, statuses=statuses, configured=configured):
            return {
                "text": blocks.whoami_text(user),
                "blocks": blocks.whoami_blocks(user, statuses, configured=configured),
            }
        case a.Holdings():
            return {"text": _holdings(answer)}
        case a.HandoffQueued(from_user=from_user):
            return {"text": f"Collecting what <@{from_user}> holds; a preview follows here."}
        case a.HandoffDecided():
            return {"text": decision_note(answer)}
        case a.RetryQueued():
            return {"text": "Retrying the failed items; the outcome follows in the thread."}
    raise TypeError(f"no rendering for {type(answer).__name__}")


def refusal(reason: str, *, actor_id: str, keys: list[str]) -> Message:
    """The reply to a job the worker refused as a whole before any platform write: the reason
    (bot-written mrkdwn naming the person), who asked, and the items that were left alone."""
    shown = ", ".join(f"`{k}`" for k in keys[:MINE_SHOWN])
    more = f" …and {len(keys) - MINE_SHOWN} more" if len(keys) > MINE_SHOWN else ""
    left = f"{_items(len(keys))} left as they are: {shown}{more}" if keys else "nothing was listed"
    context = f"Asked by <@{actor_id}> · nothing was changed on any platform · {left}"
    return {
        "text": f"{reason} (asked by <@{actor_id}>; nothing was changed)"[:TEXT_MAX],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f":no_entry: {reason}"[:2900]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context[:2900]}]},
        ],
    }


def decision_note(answer: a.HandoffDecided) -> str:
    """The line a handoff preview gains when someone confirms or cancels it."""
    if answer.confirmed:
        return f":hourglass_flowing_sand: Confirmed by <@{answer.actor_id}>; reassigning now."
    return f":no_entry_sign: Cancelled by <@{answer.actor_id}>; nothing was changed."


def _history(answer: a.History) -> str:
    key = answer.target.key
    if not answer.entries:
        return f"The bot has no history for `{key}`."
    lines = [f"History of `{key}` (newest first):"]
    for e in answer.entries:
        when = datetime.fromtimestamp(e.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        change = f" {e.before or '—'} → {e.after or '—'}" if (e.before or e.after) else ""
        detail = f" — {e.detail}" if e.detail else ""
        lines.append(f"• {when} <@{e.actor_id}> {e.verb}: {e.outcome}{change}{detail}")
    return "\n".join(lines)[:TEXT_MAX]


def _holdings(answer: a.Holdings) -> str:
    lines: list[str] = []
    total = 0
    for platform, items in answer.held.items():
        if isinstance(items, str):
            lines.append(f"*{platform.label}*: {items}")
            continue
        total += len(items)
        shown = ", ".join(f"`{t.key}`" for t in items[:MINE_SHOWN])
        more = f" …and {len(items) - MINE_SHOWN} more" if len(items) > MINE_SHOWN else ""
        lines.append(f"*{platform.label}* ({len(items)}): {shown or 'nothing open'}{more}")
    head = f"<@{answer.user}> holds {total} open item{'s' if total != 1 else ''}:"
    return "\n".join([head, *lines])[:TEXT_MAX]


def _oncall(answer: a.OnCallOverview) -> str:
    lines: list[str] = []
    for view in answer.schedules:
        lines.append(f"*{view.name}* ({view.source}, {view.mode})")
        if view.error:
            lines.append(f"• could not be read: {view.error}")
        else:
            lines.append(f"• on call now: {', '.join(view.current) or 'nobody'}")
            lines.append(f"• next: {', '.join(view.next) or 'nobody scheduled'}")
        lines += [f"• pending handoff: {line}" for line in view.pending]
    return "\n".join(lines)[:TEXT_MAX] or "No on-call schedules are configured."
