"""The assign, attach-to-case and resolve modals."""

from __future__ import annotations

from typing import Any

from bot import rules
from bot.errors import UnsupportedError
from bot.models import Platform
from bot.slack.blocks._kit import (
    MODAL_TITLE_MAX,
    OPTION_TEXT_MAX,
    SECTION_TEXT_MAX,
    Block,
    _count,
    _plain,
    _section,
    _target_lines,
)
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.metadata import ModalMeta

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
    reasons and a multi-line comment; Datadog's resolve is a mute, so it gets ``mute_modal``.
    Raises ``UnsupportedError`` for a platform without a resolve operation and ``ValueError``
    if ``meta`` does not fit."""
    if rules.CAPABILITIES[platform].mute:
        return mute_modal(meta)
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


def mute_modal(meta: ModalMeta) -> dict[str, Any]:
    """The "Mute…" modal for Datadog findings: a reason (required), an optional expiry date
    (the mute lifts at the end of that day, UTC) and a description of at most 280 characters.
    Raises ``ValueError`` if ``meta`` does not fit ``private_metadata``."""
    options = [{"text": _plain(reason_label(r), OPTION_TEXT_MAX), "value": r} for r in rules.DATADOG_MUTE_REASONS]
    reason_input = {
        "type": "input",
        "block_id": BlockId.MUTE_REASON.value,
        "label": _plain("Reason", 2000),
        "element": {
            "type": "static_select",
            "action_id": ActionId.MUTE_REASON.value,
            "placeholder": _plain("Choose a reason", 150),
            "options": options,
        },
    }
    until_input = {
        "type": "input",
        "block_id": BlockId.MUTE_UNTIL.value,
        "label": _plain("Muted until", 2000),
        "hint": _plain("Leave empty to mute indefinitely; the mute lifts at the end of the day (UTC).", 2000),
        "optional": True,
        "element": {
            "type": "datepicker",
            "action_id": ActionId.MUTE_UNTIL.value,
            "placeholder": _plain("Pick a date", 150),
        },
    }
    description_input = {
        "type": "input",
        "block_id": BlockId.MUTE_DESCRIPTION.value,
        "label": _plain("Description", 2000),
        "optional": True,
        "element": {
            "type": "plain_text_input",
            "action_id": ActionId.MUTE_DESCRIPTION.value,
            "multiline": True,
            "max_length": rules.DATADOG_DESCRIPTION_MAX,
            "placeholder": _plain("Why is this muted?", 150),
        },
    }
    blocks = [_items_section(meta), reason_input, until_input, description_input]
    return _modal(CallbackId.MUTE_MODAL, "Mute findings", "Mute", meta, blocks)


def tag_modal(meta: ModalMeta) -> dict[str, Any]:
    """The "Tags…" modal for Kibana alerts: one line of ``+tag`` / ``-tag`` changes.
    Raises ``ValueError`` if ``meta`` does not fit ``private_metadata``."""
    changes = {
        "type": "input",
        "block_id": BlockId.TAG_CHANGES.value,
        "label": _plain("Tag changes", 2000),
        "hint": _plain("+tag adds it, -tag removes it; no spaces inside a tag.", 2000),
        "element": {
            "type": "plain_text_input",
            "action_id": ActionId.TAG_CHANGES.value,
            "placeholder": _plain("+triaged -noise", 150),
            "max_length": 1000,
        },
    }
    return _modal(CallbackId.TAG_MODAL, "Tag alerts", "Apply", meta, [_items_section(meta), changes])
