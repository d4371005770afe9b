"""Pure Block Kit builders: alert cards, modals, result replies, handoff, help and errors.

Every function returns plain dicts (``chat.postMessage``'s ``blocks`` or a
``views.open`` view), and has a ``*_text`` companion for the message's ``text``
(the notification and screen-reader fallback). Nothing here does I/O.

Limits (shared/slack/NOTES.md §4) are enforced by construction: vendor text is
truncated to each field's limit, a message stays within 50 blocks and 8,000
characters of text however many items it reports (``pages`` spreads a big reply over
thread messages), and every Slack-carried state
goes through ``bot.slack.metadata`` (which refuses oversize values).

Vendor and user text is escaped (``&`` ``<`` ``>``) before it goes into mrkdwn, so a
finding titled ``<!channel>`` cannot ping a channel; ``summary`` and ``actor_note``
arguments are mrkdwn written by the bot (they may hold mentions) and are not escaped.

The builders live by concern: ``cards``, ``modals``, ``results``, ``handoff`` and
``replies`` (whoami, help, usage errors), over the shared primitives in ``_kit``.
"""

from __future__ import annotations

from bot.slack.blocks._kit import (
    OUTCOME_EMOJI,
    OUTCOME_LABEL,
    OUTCOME_ORDER,
    Block,
    cut,
    esc,
    esc_cut,
    keep_user_mentions,
    mention,
    slack_date,
    updated_note,
)
from bot.slack.blocks.cards import (
    alert_card,
    alert_card_text,
    missing_card,
    missing_card_text,
)
from bot.slack.blocks.handoff import (
    handoff_preview,
    handoff_preview_text,
    handoff_result,
    handoff_result_text,
    shift_change_note,
)
from bot.slack.blocks.home import home_view, unfurl_card
from bot.slack.blocks.modals import (
    assign_modal,
    attach_modal,
    mute_modal,
    reason_label,
    resolve_modal,
    tag_modal,
)
from bot.slack.blocks.replies import (
    help_blocks,
    help_fallback_text,
    usage_error_blocks,
    usage_error_text,
    whoami_blocks,
    whoami_lines,
    whoami_text,
)
from bot.slack.blocks.results import (
    lists_every_item,
    result_blocks,
    result_text,
)

__all__ = [
    "OUTCOME_EMOJI",
    "OUTCOME_LABEL",
    "OUTCOME_ORDER",
    "Block",
    "alert_card",
    "alert_card_text",
    "assign_modal",
    "attach_modal",
    "cut",
    "esc",
    "esc_cut",
    "handoff_preview",
    "handoff_preview_text",
    "handoff_result",
    "handoff_result_text",
    "help_blocks",
    "help_fallback_text",
    "home_view",
    "keep_user_mentions",
    "lists_every_item",
    "mention",
    "missing_card",
    "missing_card_text",
    "mute_modal",
    "reason_label",
    "resolve_modal",
    "result_blocks",
    "result_text",
    "shift_change_note",
    "slack_date",
    "tag_modal",
    "unfurl_card",
    "updated_note",
    "usage_error_blocks",
    "usage_error_text",
    "whoami_blocks",
    "whoami_lines",
    "whoami_text",
]
