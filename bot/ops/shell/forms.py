"""The shell's forms and buttons: find the button a line names, and ask a modal's inputs.

Pure helpers of ``bot.ops.shell.session``: they read and write the console through the
callables they are given and know nothing of the app.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.sandbox.render import button_label, buttons
from bot.sandbox.slack import SlackSandbox

Reader = Callable[[str], Awaitable[str | None]]


@dataclass
class Card:
    """A message with buttons on screen: where it is and what it holds now."""

    number: int
    channel: str
    ts: str
    message: dict[str, Any]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _norm(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text.replace("…", "").replace("...", "")).strip().lower()


def _number(token: str) -> int | None:
    value = token.strip().lstrip("#")
    return int(value) if value.isdigit() else None


def find_button(cards: dict[int, Card], arg: str) -> tuple[Card, dict[str, Any], dict[str, Any]] | str:
    """The card, block and button that ``press <arg>`` names, or a sentence saying why none fits."""
    try:
        words = shlex.split(arg)
    except ValueError as exc:
        return f"Cannot read that: {exc}."
    number = None
    if words and _number(words[-1]) is not None:
        number = _number(words.pop())
    if words and words[-1].lower() in ("on", "card"):
        words.pop()
    if words and words[-1].lower() == "on":
        words.pop()
    wanted = _norm(" ".join(words))
    if not wanted:
        return 'Press which button? e.g. `press "Assign to me" 1` (`cards` lists them).'
    candidates = [cards[number]] if number in cards else [] if number else list(cards.values())[::-1]
    if number and not candidates:
        return f"There is no card #{number}; `cards` lists them."
    for card in candidates:
        pairs = buttons(card.message.get("blocks") or [])
        # Exact label or id first, then a prefix ("assign" → "Assign…"), then any word of it
        # ("confirm" → the handoff_confirm button labelled "Hand off 5 items").
        for match in (str.__eq__, str.startswith, lambda n, w: f" {w} " in f" {n} "):
            for block, element in pairs:
                names = (_norm(button_label(element)), _norm(str(element.get("action_id", ""))))
                if any(match(n, wanted) for n in names):
                    return card, block, element
    where = f"card #{number}" if number else "any card"
    return f"No button {wanted!r} on {where}; `cards` lists the buttons."


async def ask_input(
    block: dict[str, Any], *, read: Reader, say: Callable[[str], None], slack: SlackSandbox
) -> dict[str, Any] | None:
    """Ask for one modal input on the console; its state value, or None when the form is closed."""
    element = block.get("element") or {}
    kind = element.get("type")
    label = str((block.get("label") or {}).get("text") or "value")
    optional = bool(block.get("optional"))
    action_id = str(element.get("action_id"))
    options = element.get("options") or []
    initial = element.get("initial_option")
    hint = {"users_select": " (@name)", "plain_text_input": "", "datepicker": " (YYYY-MM-DD)"}.get(kind or "", "")
    if kind == "static_select":
        for n, option in enumerate(options, 1):
            say(f"│   {n}. {option['text']['text']} ({option['value']})")
        default = f", blank for {initial['text']['text']}" if initial else ""
        hint = f" (number or value{default})"
    elif optional:
        hint += " (optional, blank to skip)"
    while True:
        raw = await read(f"│ {label}{hint}: ")
        if raw is None or raw.strip().lower() == "cancel":
            return None
        value = raw.strip()
        if kind == "users_select":
            user = slack.user_named(value) if value else None
            if user is None and re.fullmatch(r"@?[UW][A-Z0-9]{2,}", value):
                return {action_id: {"type": kind, "selected_user": value.lstrip("@")}}
            if user is not None:
                return {action_id: {"type": kind, "selected_user": user.id}}
            if not value and optional:
                return {action_id: {"type": kind, "selected_user": None}}
            say(f"│ ⚠ pick a person: {', '.join('@' + u.name for u in slack.users.values())}")
        elif kind == "static_select":
            if not value:
                if initial or optional:
                    return {action_id: {"type": kind, "selected_option": initial}}
                say("│ ⚠ this one is required")
                continue
            chosen = next(
                (
                    o
                    for n, o in enumerate(options, 1)
                    if value in (str(n), o["value"]) or _norm(value) == _norm(o["text"]["text"])
                ),
                None,
            )
            if chosen is not None:
                return {action_id: {"type": kind, "selected_option": chosen}}
            say("│ ⚠ pick one of the numbers above")
        elif kind == "datepicker":
            if not value and optional:
                return {action_id: {"type": kind, "selected_date": None}}
            try:
                return {action_id: {"type": kind, "selected_date": date.fromisoformat(value).isoformat()}}
            except ValueError:
                say("│ ⚠ a date as YYYY-MM-DD, e.g. 2027-01-31")
        else:
            if value or optional:
                return {action_id: {"type": kind or "plain_text_input", "value": value or None}}
            say("│ ⚠ this one is required")
