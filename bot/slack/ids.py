"""Every Slack identifier the bot sends or matches on: action, callback and block ids.

Listeners register on these enums and builders emit them, so an id is spelled in
exactly one place. The values are part of the deployed contract with Slack
(``CallbackId.TRIAGE_MESSAGE`` is named in the app manifest; ids on cards already
posted keep arriving after a deploy), so renaming a value is a breaking change.
"""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    """``action_id`` of every interactive element: card buttons, job buttons, modal inputs."""

    # Alert card buttons; each carries a CardRef as its value.
    ASSIGN_ME = "assign_me"
    ASSIGN_OPEN = "assign_open"  # opens the user-picker modal
    UNASSIGN = "unassign"
    ATTACH_OPEN = "attach_open"  # opens the case modal (Datadog only)
    RESOLVE_OPEN = "resolve_open"  # opens the reason/comment modal
    MUTE_OPEN = "mute_open"  # opens the mute modal (Datadog)
    UNMUTE = "unmute"  # reopen a muted Datadog finding
    DETACH = "detach"  # take a Datadog finding out of its case
    REOPEN = "reopen"  # a closed Kibana alert or resolved Xpanse incident back to work
    ACK = "ack"  # a Kibana alert acknowledged
    TAG_OPEN = "tag_open"  # opens the tags modal (Kibana)
    REFRESH = "refresh"
    # A URL button still sends block_actions, which the app must ack.
    OPEN_LINK = "open_link"
    HOME_REFRESH = "home_refresh"  # the App Home's Refresh
    UNDO = "undo"  # a result's Undo, while its window lasts

    # Handoff preview and result buttons; each carries a HandoffRef as its value.
    HANDOFF_CONFIRM = "handoff_confirm"
    HANDOFF_CANCEL = "handoff_cancel"
    RETRY_FAILED = "retry_failed"

    # Digest buttons (a storm's alerts in one table); each carries a DigestRef as its value.
    DIGEST_ASSIGN_ME = "digest_assign_me"
    DIGEST_ASSIGN_OPEN = "digest_assign_open"
    DIGEST_RESOLVE_OPEN = "digest_resolve_open"
    DIGEST_SHOW_OPEN = "digest_show_open"

    # Modal inputs, read back from view.state.values[BlockId][ActionId].
    ASSIGN_USER = "assign_user"
    ATTACH_CASE = "attach_case"
    RESOLVE_REASON = "resolve_reason"
    RESOLVE_COMMENT = "resolve_comment"
    MUTE_REASON = "mute_reason"
    MUTE_UNTIL = "mute_until"
    MUTE_DESCRIPTION = "mute_description"
    TAG_CHANGES = "tag_changes"
    DIGEST_ROWS = "digest_rows"  # the "Show cards" multi-select of a digest's rows


class CallbackId(StrEnum):
    """``callback_id`` of every modal and of the message shortcut."""

    ASSIGN_MODAL = "assign_modal"
    ATTACH_MODAL = "attach_modal"
    RESOLVE_MODAL = "resolve_modal"
    MUTE_MODAL = "mute_modal"
    TAG_MODAL = "tag_modal"
    TRIAGE_MESSAGE = "triage_message"  # message shortcut; the manifest uses this id
    DIGEST_ASSIGN_MODAL = "digest_assign_modal"
    DIGEST_RESOLVE_MODAL = "digest_resolve_modal"
    DIGEST_SHOW_MODAL = "digest_show_modal"


class BlockId(StrEnum):
    """``block_id`` of every modal input block (the key of ``view.state.values``)."""

    ASSIGN_USER = "assign_user"
    ATTACH_CASE = "attach_case"
    RESOLVE_REASON = "resolve_reason"
    RESOLVE_COMMENT = "resolve_comment"
    MUTE_REASON = "mute_reason"
    MUTE_UNTIL = "mute_until"
    MUTE_DESCRIPTION = "mute_description"
    TAG_CHANGES = "tag_changes"
    DIGEST_ROWS = "digest_rows"
    # "Resolve all…": one reason per platform the digest lists (Kibana, Xpanse).
    DIGEST_REASON_KIBANA = "digest_reason_kibana"
    DIGEST_REASON_XPANSE = "digest_reason_xpanse"
