"""Block Kit as plain text, for the ``triage-bot shell`` console.

Renders what the bot sends Slack (header, section text/fields/accessory, context,
actions, divider, input) readably in a terminal: mentions become ``@name``, links
``label (url)``, the common emoji codes symbols, and buttons ``[Label]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

Block = dict[str, Any]

_EMOJI = {
    ":white_check_mark:": "✔",
    ":x:": "✖",
    ":warning:": "⚠",
    ":grey_question:": "?",
    ":fast_forward:": "»",
    ":hourglass_flowing_sand:": "⏳",
    ":no_entry_sign:": "⛔",
}
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!([a-z]+)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_BOLD = re.compile(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_([^_\n]+)_(?![\w_])")


def mrkdwn(text: str, *, name_of: Callable[[str], str | None] = lambda _id: None) -> str:
    """Slack mrkdwn as terminal text: mentions, links, emoji, bold/italic markers and escapes."""
    text = _MENTION.sub(lambda m: "@" + (name_of(m.group(1)) or m.group(2) or m.group(1)), text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    # <!date^…|fallback> shows its fallback; <!here> and friends read as @here.
    text = _SPECIAL.sub(lambda m: m.group(2) if m.group(1) == "date" and m.group(2) else "@" + m.group(1), text)
    for code, symbol in _EMOJI.items():
        text = text.replace(code, symbol)
    text = _ITALIC.sub(r"\1", _BOLD.sub(r"\1", text))
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text(obj: Any, name_of: Callable[[str], str | None]) -> str:
    if not isinstance(obj, dict):
        return ""
    raw = str(obj.get("text") or "")
    return mrkdwn(raw, name_of=name_of) if obj.get("type") == "mrkdwn" else raw


def button_label(element: dict[str, Any]) -> str:
    return str((element.get("text") or {}).get("text") or element.get("action_id") or "button")


def buttons(blocks: Sequence[Block]) -> list[tuple[Block, dict[str, Any]]]:
    """Every button (block, element) in order, accessories included."""
    found: list[tuple[Block, dict[str, Any]]] = []
    for block in blocks:
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.insert(0, block["accessory"])
        found += [(block, e) for e in elements if isinstance(e, dict) and e.get("type") == "button"]
    return found


def render_blocks(
    blocks: Sequence[Block], *, name_of: Callable[[str], str | None] = lambda _id: None, indent: str = ""
) -> list[str]:
    """Lines of text for a message's blocks (no trailing newline)."""
    lines: list[str] = []

    def add(text: str, prefix: str = "") -> None:
        for n, line in enumerate(text.splitlines() or [""]):
            lines.append(indent + (prefix if n == 0 else " " * len(prefix)) + line)

    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            add(_text(block.get("text"), name_of).upper())
        elif kind == "section":
            if block.get("text"):
                add(_text(block["text"], name_of))
            for field in block.get("fields") or []:
                label, _, value = _text(field, name_of).partition("\n")
                add(f"{label}: {value}" if value else label, "  ")
            accessory = block.get("accessory") or {}
            if accessory.get("type") == "button" and accessory.get("url"):
                add(f"↗ {button_label(accessory)}: {accessory['url']}", "  ")
        elif kind == "context":
            add(" ".join(_text(e, name_of) for e in block.get("elements") or []), "  · ")
        elif kind == "divider":
            add("─" * 40)
        elif kind == "actions":
            labels = [f"[{button_label(e)}]" for e in block.get("elements") or [] if e.get("type") == "button"]
            if labels:
                add(" ".join(labels))
        elif kind == "table":
            rows = [[str(c.get("text") or "") for c in row] for row in block.get("rows") or []]
            shown = rows[:12]
            for row in shown:
                add(" | ".join(cell[:40] for cell in row), "  ")
            if len(rows) > len(shown):
                add(f"… {len(rows) - len(shown)} more rows", "  ")
        elif kind == "input":
            optional = " (optional)" if block.get("optional") else ""
            add(f"{_text(block.get('label'), name_of)}{optional}: <{(block.get('element') or {}).get('type')}>")
    return lines
