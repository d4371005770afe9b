"""The storm digest: many waiting alerts in one ``table`` block, with bulk actions.

A table block holds at most 100 rows of at most 20 cells (``raw_text`` here, at least one
character each) and a message holds one table. The first row names the columns, so a
digest lists up to 99 alerts; the rows live in the store and every button carries only
the digest id (``DigestRef``), far under Slack's 2,000-character value limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot import rules
from bot.models import Platform, Verb
from bot.slack.blocks._kit import (
    MODAL_TITLE_MAX,
    OPTION_TEXT_MAX,
    Block,
    _button,
    _confirm,
    _count,
    _plain,
    _section,
    cut,
)
from bot.slack.blocks.modals import reason_label
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.metadata import DigestMeta, DigestRef
from bot.store.intake import DigestRow

TABLE_ROWS_MAX = 100
# Characters of cell text the table may use: the message as a whole keeps under 8,000.
TABLE_TEXT_BUDGET = 6_400
ID_MAX = 44
SHOW_OPTIONS_MAX = 100


def _cell(text: str) -> dict[str, Any]:
    return {"type": "raw_text", "text": text or "—"}


def digest_text(rows: Sequence[DigestRow]) -> str:
    """The digest's notification text."""
    return f"{_count(len(rows), 'alert')} arrived faster than cards can be posted; digest below."


def digest_table(rows: Sequence[DigestRow]) -> Block:
    """The table: a header row, then severity, platform, title and id of each alert."""
    rows = rows[: TABLE_ROWS_MAX - 1]
    budget = TABLE_TEXT_BUDGET // max(len(rows), 1)
    table: list[list[dict[str, Any]]] = [[_cell(h) for h in ("Severity", "Platform", "Title", "Id")]]
    for row in rows:
        severity = cut(row.severity or "—", 12)
        platform = row.target.platform.label
        key = cut(row.target.key, ID_MAX)
        title_max = max(8, budget - len(severity) - len(platform) - len(key))
        table.append([_cell(severity), _cell(platform), _cell(cut(row.title, title_max)), _cell(key)])
    return {
        "type": "table",
        "column_settings": [{"align": "left"}, {"align": "left"}, {"is_wrapped": True}, {"is_wrapped": True}],
        "rows": table,
    }


def digest_blocks(digest_id: str, rows: Sequence[DigestRow]) -> list[Block]:
    """The digest message: what happened, the table, and the bulk buttons."""
    ref = DigestRef(id=digest_id).dumps()
    n = _count(len(rows), "alert")
    head = (
        f":rotating_light: *{n}* arrived faster than Slack lets the bot post cards, so they are listed here. "
        "The buttons act on every alert in this digest; *Show cards* posts cards for the ones you choose."
    )
    buttons = [
        _button(
            "Assign all to me",
            ActionId.DIGEST_ASSIGN_ME,
            value=ref,
            style="primary",
            confirm=_confirm("Assign all to you?", f"Assign all {n} in this digest to you.", confirm="Assign all"),
        ),
        _button("Assign all…", ActionId.DIGEST_ASSIGN_OPEN, value=ref),
        _button("Resolve all…", ActionId.DIGEST_RESOLVE_OPEN, value=ref),
        _button("Show cards", ActionId.DIGEST_SHOW_OPEN, value=ref),
    ]
    return [_section(head), digest_table(rows), {"type": "actions", "elements": buttons}]


def change_note_text(key: str, note: str) -> str:
    """The thread note a re-delivered alert gets when something on its card changed."""
    return cut(f"Re-delivered: {note} (`{key}`)", 3000)


# ---------------------------------------------------------------- digest modals


def _modal(callback: CallbackId, title: str, submit: str, meta: DigestMeta, blocks: list[Block]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback.value,
        "title": _plain(title, MODAL_TITLE_MAX),
        "submit": _plain(submit, MODAL_TITLE_MAX),
        "close": _plain("Cancel", MODAL_TITLE_MAX),
        "private_metadata": meta.dumps(),
        "blocks": blocks,
    }


def digest_assign_modal(meta: DigestMeta, rows: Sequence[DigestRow]) -> dict[str, Any]:
    """ "Assign all…": a user picker for every alert of the digest."""
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
    intro = _section(f"Assign all *{_count(len(rows), 'alert')}* of this digest.")
    return _modal(CallbackId.DIGEST_ASSIGN_MODAL, "Assign all", "Assign all", meta, [intro, picker])


REASON_BLOCKS = {Platform.KIBANA: BlockId.DIGEST_REASON_KIBANA, Platform.XPANSE: BlockId.DIGEST_REASON_XPANSE}


def digest_resolve_modal(meta: DigestMeta, rows: Sequence[DigestRow]) -> dict[str, Any]:
    """ "Resolve all…": a reason per platform the digest lists, and one comment.

    Datadog findings cannot be resolved from Slack; the modal says how many are left as they are.
    """
    counts = {p: sum(1 for r in rows if r.target.platform is p) for p in Platform}
    lines = [f"Resolve all *{_count(len(rows), 'alert')}* of this digest."]
    if counts[Platform.DATADOG]:
        lines.append(f"{_count(counts[Platform.DATADOG], 'Datadog finding')} cannot be resolved from Slack.")
    blocks: list[Block] = [_section("\n".join(lines))]
    for platform, block_id in REASON_BLOCKS.items():
        if not counts[platform]:
            continue
        reasons = rules.RESOLVE_REASONS.get(platform) or ()
        options = [{"text": _plain(reason_label(r), OPTION_TEXT_MAX), "value": r} for r in reasons]
        select: dict[str, Any] = {
            "type": "static_select",
            "action_id": ActionId.RESOLVE_REASON.value,
            "placeholder": _plain("Choose a reason", 150),
            "options": options,
        }
        required = rules.CAPABILITIES[platform].reason_required
        if required:
            select["initial_option"] = options[0]
        label = f"{platform.label} reason ({_count(counts[platform], 'alert')})"
        blocks.append(
            {
                "type": "input",
                "block_id": block_id.value,
                "label": _plain(label, 2000),
                "optional": not required,
                "element": select,
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": BlockId.RESOLVE_COMMENT.value,
            "label": _plain("Comment", 2000),
            "optional": True,
            "element": {
                "type": "plain_text_input",
                "action_id": ActionId.RESOLVE_COMMENT.value,
                "multiline": True,
                "max_length": 3000,
            },
        }
    )
    return _modal(CallbackId.DIGEST_RESOLVE_MODAL, "Resolve all", "Resolve all", meta, blocks)


def digest_show_modal(meta: DigestMeta, rows: Sequence[DigestRow]) -> dict[str, Any]:
    """ "Show cards": a multi-select of the digest's rows (value: the row number)."""
    options = [
        {
            "text": _plain(f"{r.severity or '—'} · {cut(r.title, 40) or '—'} · {r.target.key}", OPTION_TEXT_MAX),
            "value": str(r.seq),
        }
        for r in rows[:SHOW_OPTIONS_MAX]
    ]
    picker = {
        "type": "input",
        "block_id": BlockId.DIGEST_ROWS.value,
        "label": _plain("Alerts to post as cards", 2000),
        "element": {
            "type": "multi_static_select",
            "action_id": ActionId.DIGEST_ROWS.value,
            "placeholder": _plain("Choose alerts", 150),
            "options": options,
        },
    }
    intro = _section("The cards are posted in the digest's thread.")
    return _modal(CallbackId.DIGEST_SHOW_MODAL, "Show cards", "Show", meta, [intro, picker])


def digest_modal(verb: Verb, meta: DigestMeta, rows: Sequence[DigestRow]) -> dict[str, Any]:
    """The digest modal for ``verb`` (assign, resolve or show)."""
    if verb is Verb.ASSIGN:
        return digest_assign_modal(meta, rows)
    if verb is Verb.RESOLVE:
        return digest_resolve_modal(meta, rows)
    return digest_show_modal(meta, rows)
