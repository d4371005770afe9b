"""Replies after the acknowledgement that are not a job's outcome: an ephemeral answer through the
request's response_url, a handoff preview edited after Confirm or Cancel, an on-call notice.

Each logs a Slack failure and never raises: what was stored stands, whoever asked can look again.
"""

from __future__ import annotations

from typing import Any

import structlog

from bot.core.answers import HandoffDecided
from bot.core.oncall import Notice
from bot.slack.render import decision_note
from bot.slack_web import SlackApiError, SlackRequestError, SlackWeb

log = structlog.get_logger(__name__)


class Replies:
    """Mixed into the reporter: the replies a listener leaves to run after its ack."""

    slack: SlackWeb

    async def ephemeral(self, response_url: str | None, message: dict[str, Any]) -> None:
        """Tell only the actor, through the request's response_url; a failure is logged, not raised
        (the url may have expired, and what was stored stands)."""
        if not response_url:
            log.warning("ephemeral_undeliverable")
            return
        try:
            status = await self.slack.respond(
                response_url, {**message, "response_type": "ephemeral", "replace_original": False}
            )
        except SlackRequestError as exc:
            log.warning("respond_failed", error=str(exc))
            return
        if status >= 400:
            log.warning("respond_refused", status=status)

    async def handoff_decided(self, answer: HandoffDecided, *, body: dict[str, Any], response_url: str | None) -> None:
        """Replace a handoff preview's buttons with who confirmed or cancelled it."""
        note = decision_note(answer)
        container = body.get("container") or {}
        message = body.get("message") or {}
        kept = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
        kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        channel = container.get("channel_id") or answer.job.channel_id
        ts = container.get("message_ts") or answer.job.card_ts
        if not channel or not ts:  # a preview sent through a response_url has no message to edit
            await self.ephemeral(response_url, {"text": note})
            return
        try:
            await self.slack.chat_update(channel=str(channel), ts=str(ts), text=note, blocks=kept)
        except SlackApiError as exc:
            log.warning("handoff_preview_update_failed", error=exc.response.get("error"))


async def post_notice(slack: SlackWeb, notice: Notice) -> None:
    """Post an on-call watcher notice; a Slack failure is logged, never raised into the watcher."""
    try:
        await slack.chat_postMessage(channel=notice.channel, thread_ts=notice.thread_ts, text=notice.text[:3900])
    except (SlackApiError, SlackRequestError) as exc:
        log.warning("oncall_notice_failed", channel=notice.channel, error=type(exc).__name__)
